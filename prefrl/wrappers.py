"""A learned reward in place of an env's reward, for any gymnasium or SB3 learner.

The true reward is kept in ``info["true_reward"]`` at every step, so a user's own script can log
both. The reward is any callable on a batch of (observations, actions) -- :func:`prefrl.load_reward`
returns one.

Example (DQN on a saved cartpole learned reward):
    >>> from stable_baselines3 import DQN
    >>> from stable_baselines3.common.env_util import make_vec_env
    >>> reward = prefrl.load_reward("runs/cartpole-learned-s0")
    >>> venv = prefrl.RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=4), reward)
    >>> DQN("MlpPolicy", venv).learn(50_000)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

__all__ = ["RewardWrapper", "RewardVecEnvWrapper"]

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Maps observations (N, *obs_shape) and actions (N, *act_shape) to rewards (N,)."""


class RewardWrapper(gym.Wrapper):
    """A gymnasium env whose reward for the step (s, a) is ``reward(s, a)``; the env's own reward is
    ``info["true_reward"]``. Termination and truncation are the env's, unchanged.

    Args:
        env: the env to wrap.
        reward: a callable on batches of observations and actions (see :data:`RewardFn`).
    """

    def __init__(self, env: gym.Env, reward: RewardFn):
        if not callable(reward):
            raise TypeError(f"RewardWrapper: reward must be callable on (observations, actions), got {type(reward)}")
        super().__init__(env)
        self.reward = reward
        self._obs: Any = None

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        learned = float(np.asarray(self.reward(np.asarray(self._obs)[None], np.asarray(action)[None])).reshape(-1)[0])
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        self._obs = obs
        return obs, learned, terminated, truncated, {**info, "true_reward": float(true_reward)}


class RewardVecEnvWrapper(VecEnvWrapper):
    """An SB3 ``VecEnv`` whose rewards are ``reward(observations, actions)`` of the step each env took;
    the env's own reward is ``info["true_reward"]``. An env that ended an episode is reset by the
    ``VecEnv`` as usual; its next step's reward reads the reset observation.

    Args:
        venv: the vectorized env to wrap.
        reward: a callable on batches of observations and actions (see :data:`RewardFn`).
    """

    def __init__(self, venv: VecEnv, reward: RewardFn):
        if not callable(reward):
            raise TypeError(f"RewardVecEnvWrapper: reward must be callable on (observations, actions), "
                            f"got {type(reward)}")
        super().__init__(venv)
        self.reward = reward
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions
        self.venv.step_async(actions)

    def step_wait(self):
        obs, true_rewards, dones, infos = self.venv.step_wait()
        rewards = np.asarray(self.reward(self._obs, self._actions), dtype=np.float32).reshape(len(true_rewards))
        for info, r in zip(infos, true_rewards):
            info["true_reward"] = float(r)
        self._obs = obs
        return obs, rewards, dones, infos
