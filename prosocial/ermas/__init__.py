"""ERMAS (specs §9.9): robust planners against ε-equilibria of agents.

``dual`` (regret and the multiplier step), ``meta`` (the first-order REPTILE step),
``objective`` (the WPPO agent objective as a PPO update rule), ``loop`` (the outer loop:
snapshot, deviations, main update, dual and meta steps; checkpointed and resumable) and
``evaluation`` (the §9.9.9 protocol: frozen planner, fresh agents at each test Q).
"""
