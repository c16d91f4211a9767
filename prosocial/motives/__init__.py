"""Social motives: reward shaping and intrinsic rewards, outside the environments."""

from prosocial.motives.collective import collective_reward
from prosocial.motives.inequity import inequity_aversion, smooth_rewards

__all__ = ["collective_reward", "inequity_aversion", "smooth_rewards"]
