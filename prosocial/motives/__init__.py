"""Social motives: reward shaping and intrinsic rewards, outside the environments.

``Motive`` (base.py) is the interface every motive implements; ``MotiveConfig`` chooses one
from a training config (``--motive ia --motive.beta 0.05``).
"""

from prosocial.motives.base import Motive, PolicyView, Weighted
from prosocial.motives.collective import CollectiveReward, collective_reward
from prosocial.motives.config import MotiveConfig
from prosocial.motives.inequity import InequityAversion, inequity_aversion, smooth_rewards
from prosocial.motives.influence import SocialInfluence, influence, influence_weight

__all__ = [
    "CollectiveReward",
    "InequityAversion",
    "Motive",
    "MotiveConfig",
    "PolicyView",
    "Weighted",
    "SocialInfluence",
    "collective_reward",
    "inequity_aversion",
    "influence",
    "influence_weight",
    "smooth_rewards",
]
