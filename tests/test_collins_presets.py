"""specs.md §8.6 ``collins/forage/{baseline,ir}``: the Forage defaults of §5.5 and the DQN
of §9.8, pinned value by value."""

import pytest

import prosocial
from prosocial.experiments.config import preset
from prosocial.learners.dqn_config import epsilon


@pytest.mark.parametrize("name, motive", [("collins/forage/baseline", "none"),
                                          ("collins/forage/ir", "ir")])
def test_collins_presets(name, motive):
    cfg = preset(name)
    assert (cfg.env, cfg.num_agents, cfg.max_steps, cfg.learner) == ("forage", 2, 10_000,
                                                                     "dqn")
    assert (cfg.num_envs, cfg.num_seeds, cfg.total_steps) == (1, 5, 100_000_000)
    env = prosocial.make("forage", **cfg.env_kwargs())
    # Table 1: 4×4, E = H = 8, D = 2, r_b = 0.1, B = 4 (ours), no death punishment
    assert (env.grid_size, env.max_energy, env.max_health, env.throw_mdistance,
            env.berry_capacity, env.berry_reward, env.death_punishment) == (
        (4, 4), 8, 8, 2, 4, 0.1, 0.0)
    d = cfg.dqn  # Table 2 and the fills of §9.8
    assert (d.batch_size, d.gamma, d.lr, d.tau, d.target_update_every) == (128, 0.999, 1e-3,
                                                                          0.005, 1)
    assert (d.epsilon_start, d.epsilon_end, d.epsilon_decay, d.epsilon_decay_unit) == (
        0.9, 0.05, 1000.0, "action")
    # ε(n) = 0.05 + 0.85·exp(−n / 1000): 0.9 at n = 0, 0.05 + 0.85/e ≈ 0.36270 at n = 1000
    assert float(epsilon(d, 1000)) == pytest.approx(0.05 + 0.85 / 2.718281828459045)
    assert (d.loss, d.double, d.clip_value, d.amsgrad, d.hidden_sizes) == (
        "mse", False, 100.0, True, (128, 128))
    assert (d.buffer_size, d.steps_before_learn, d.learn_every) == (10_000, 10_000, 1)
    m = cfg.motive
    assert m.name == motive
    if motive == "ir":
        assert (m.responsibility_punishment, m.psi1, m.psi2_strict, m.psi2_require_time,
                m.penalise_open_responsibility) == (0.9, "helpless", False, True, False)
