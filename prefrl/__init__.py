"""prefrl: reinforcement learning from human preferences.

Data flows one way: env (``prefrl.envs``) -> clips -> store -> queries + teachers -> labels ->
reward-model ensemble -> learned reward for SB3 -> PPO -> new rollouts.

The public API (the command line calls the same functions):

- :func:`train` with a :class:`TrainConfig`: one run, preference-based or on the true reward.
- :func:`load_reward`: a finished run's learned reward, a callable on (observations, actions).
- :class:`RewardWrapper` (gymnasium) and :class:`RewardVecEnvWrapper` (SB3): that reward in place
  of an env's, the true reward in ``info["true_reward"]``, for any learner (DQN, SAC, ...).

Example:
    >>> import prefrl
    >>> summary = prefrl.train(prefrl.TrainConfig("cartpole", seed=0, run_dir="runs/cp"))
    >>> reward = prefrl.load_reward("runs/cp")
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Each public name and the module that defines it; imported on first use, so that `import prefrl.store`
# (the labeling window) does not load torch and SB3.
_API = {
    "train": "training",
    "resume": "training",
    "TrainConfig": "config",
    "load_reward": "run_dir",
    "load_policy": "run_dir",
    "RunDir": "run_dir",
    "LearnedReward": "reward_fn",
    "RewardWrapper": "wrappers",
    "RewardVecEnvWrapper": "wrappers",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'prefrl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
