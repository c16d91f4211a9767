"""prosocial: multi-agent RL research on how cooperation emerges in social dilemmas."""

from prosocial import prng

prng.install()  # JAX's random hash written out on CPU: the same bits, faster (prng.py)

from prosocial.envs.registry import list_envs, make, pettingzoo_env  # noqa: E402

__version__ = "0.1.0"
__all__ = ["make", "list_envs", "pettingzoo_env", "__version__"]
