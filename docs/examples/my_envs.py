"""A user's own env, as a module that registers it: prefrl trains, compares and labels it by the
name ``my_envs:SlowPole-v0`` (gymnasium's ``module:EnvId``), importing this module itself.

SlowPole is CartPole with a weaker push (force 5 N instead of 10), so a stand-in for any env of
your own: prefrl knows nothing of it beyond what gymnasium's registry says.
"""

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class SlowPoleEnv(CartPoleEnv):
    def __init__(self, render_mode=None):
        super().__init__(render_mode=render_mode)
        self.force_mag = 5.0


gym.register("SlowPole-v0", entry_point=SlowPoleEnv, max_episode_steps=500)
