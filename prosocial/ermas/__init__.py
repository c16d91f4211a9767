"""ERMAS (specs §9.9): robust planners against ε-equilibria of agents.

``dual`` (regret and the multiplier step), ``meta`` (the first-order REPTILE step),
``objective`` (the WPPO agent objective as a PPO update rule), ``trpo`` (the trust-region
deviation options: TRPO steps of radius ρ/n_inner, PPO with a KL early stop), ``loop`` (the
outer loop: snapshot, deviations, main update, dual and meta steps; checkpointed and
resumable) and ``evaluation`` (the §9.9.9 protocol: frozen planner, fresh agents at each
test Q).
"""
