"""The spaces of prosocial/envs/spaces.py: MultiDiscrete next to Discrete, Box and Dict."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from prosocial.envs.spaces import Box, Dict, Discrete, MultiDiscrete


def test_multidiscrete_attributes_equality_and_repr():
    space = MultiDiscrete([3, 5, 2])
    assert space.nvec == (3, 5, 2) and space.shape == (3,) and space.dtype == "int32"
    assert space == MultiDiscrete((3, 5, 2)) == MultiDiscrete(np.array([3, 5, 2]))
    assert space != MultiDiscrete((3, 5)) and space != MultiDiscrete((3, 5, 2), "int64")
    assert hash(space) == hash(MultiDiscrete((3, 5, 2)))
    assert repr(space) == "MultiDiscrete(nvec=(3, 5, 2), dtype='int32')"
    assert repr(Discrete(4)) == "Discrete(n=4, dtype='int32')"  # the same style


def test_multidiscrete_contains():
    space = MultiDiscrete((3, 5))
    assert space.contains(np.array([2, 4], np.int32))
    assert space.contains([0, 0])
    assert not space.contains([3, 0])  # component 0 has 3 values: 0, 1, 2
    assert not space.contains([0, 5])
    assert not space.contains([-1, 0])
    assert not space.contains([1, 1, 1])  # wrong shape
    assert not space.contains(np.array([1.0, 1.0]))  # not integers
    assert not space.contains(1)


def test_multidiscrete_sample_covers_each_component_range():
    space = MultiDiscrete((2, 7))
    samples = np.asarray(jax.vmap(space.sample)(jax.random.split(jax.random.key(0), 2000)))
    assert samples.shape == (2000, 2) and samples.dtype == np.int32
    assert set(samples[:, 0].tolist()) == {0, 1}
    assert set(samples[:, 1].tolist()) == set(range(7))
    assert all(space.contains(s) for s in samples[:50])
    again = np.asarray(jax.vmap(space.sample)(jax.random.split(jax.random.key(0), 2000)))
    assert np.array_equal(samples, again)  # a key fixes the sample


def test_multidiscrete_to_gymnasium():
    gym = MultiDiscrete((7, 22)).to_gymnasium()
    assert gym.nvec.tolist() == [7, 22] and gym.dtype == np.int32


@pytest.mark.parametrize(("nvec", "message"), [
    ([], "non-empty 1-D"), ([[2, 3]], "non-empty 1-D"), ([2.5, 3], "integers"),
    ([2, 0], "≥ 1"), ([-1], "≥ 1"),
])
def test_multidiscrete_rejects_bad_sizes(nvec, message):
    with pytest.raises(ValueError, match=message):
        MultiDiscrete(nvec)
    with pytest.raises(ValueError, match="dtype must be an integer"):
        MultiDiscrete((2,), "float32")


def test_dict_of_spaces_samples_within_itself():
    space = Dict({"a": Box(0, 3, (2,), "int32"), "b": MultiDiscrete((4, 4))})
    value = jax.device_get(space.sample(jax.random.key(1)))
    assert space.contains(value)
    assert space.shape == {"a": (2,), "b": (2,)}
