"""prefrl: reinforcement learning from human preferences.

Data flows one way: env (``prefrl.envs``) -> clips -> store -> queries + teachers -> labels ->
reward-model ensemble -> learned reward for SB3 -> PPO -> new rollouts.
"""

__version__ = "0.1.0"
