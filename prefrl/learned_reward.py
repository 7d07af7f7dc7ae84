"""The learned reward inside the learner's buffers: every step recorded (clips are cut from what the
agent did), the reward written into PPO's or A2C's rollout buffer a whole rollout at a time, or into
an off-policy learner's replay buffer, where every stored transition is relabeled after each
reward-model update (PEBBLE, Lee et al. 2021); the true reward kept.

For a learned reward computed at each step (any SB3 learner, a user's own script), see
:class:`prefrl.wrappers.RewardVecEnvWrapper`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer, RolloutBuffer
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from .clips import pack_frames

__all__ = ["StepRecord", "LearnedRewardVecEnv", "relabel_rollout", "write_replay", "relabel_replay"]


class StepRecord(NamedTuple):
    """Steps recorded by :class:`LearnedRewardVecEnv` since the last drain, stacked over time:
    obs (T, n_envs, *obs_shape) seen before each action, actions (T, n_envs, ...) executed,
    true_rewards and dones (T, n_envs), frames (T, n_envs) packed (see :func:`prefrl.clips.pack_frames`) or None."""

    obs: np.ndarray
    actions: np.ndarray
    true_rewards: np.ndarray
    dones: np.ndarray
    frames: np.ndarray | None


class LearnedRewardVecEnv(VecEnvWrapper):
    """Return zero rewards, keep the true reward in ``info["true_reward"]``, and record every step.

    The caller fills in the learned reward for a whole rollout in one batch with
    :func:`relabel_rollout` (faster than a step at a time, above all on a GPU), and cuts clips from
    the recorded steps (:meth:`drain`). Episode statistics from a ``Monitor`` inside the wrapped env
    stay those of the true reward.

    Args:
        venv: the env to wrap.
        record_frames: also record ``venv.get_images()`` each step (needs ``render_mode="rgb_array"``),
            packed (:func:`prefrl.clips.pack_frames`): frames (T, n_envs) of compressed frames.
    """

    def __init__(self, venv: VecEnv, record_frames: bool = False):
        super().__init__(venv)
        self.record_frames = record_frames
        self._last_obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._steps: list[tuple] = []

    def reset(self):
        self._last_obs = self.venv.reset()
        return self._last_obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions
        self.venv.step_async(actions)

    def step_wait(self):
        obs, true_rewards, dones, infos = self.venv.step_wait()
        frames = pack_frames(self.venv.get_images()) if self.record_frames else None
        self._steps.append((self._last_obs, self._actions, true_rewards.astype(np.float32), dones, frames))
        for info, r in zip(infos, true_rewards):
            info["true_reward"] = float(r)
        self._last_obs = obs
        return obs, np.zeros_like(true_rewards, dtype=np.float32), dones, infos

    @property
    def n_recorded(self) -> int:
        """Steps recorded since the last drain."""
        return len(self._steps)

    def recorded(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Observations and actions of recorded steps ``start:stop`` (since the last drain), stacked
        over time, without forgetting them."""
        part = self._steps[start:stop]
        return np.stack([s[0] for s in part]), np.stack([s[1] for s in part])

    def drain(self) -> StepRecord | None:
        """Return the steps recorded since the last call (None if there were none) and forget them."""
        if not self._steps:
            return None
        cols = list(zip(*self._steps))
        self._steps = []
        frames = None if cols[4][0] is None else np.stack(cols[4])
        return StepRecord(np.stack(cols[0]), np.stack(cols[1]), np.stack(cols[2]), np.stack(cols[3]), frames)


def relabel_rollout(buffer: RolloutBuffer, learned_rewards: np.ndarray, last_values, dones: np.ndarray) -> None:
    """Add a whole rollout's learned rewards (n_steps, n_envs) to ``buffer`` and recompute GAE.

    The buffer's rewards hold what the deferred :class:`LearnedRewardVecEnv` returned (zeros) plus
    SB3's time-limit bootstrap γ·V(terminal observation), which is kept.
    """
    buffer.rewards += learned_rewards.reshape(buffer.rewards.shape).astype(np.float32)
    buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)


def write_replay(buffer: ReplayBuffer, learned_rewards: np.ndarray) -> None:
    """Write the learned rewards (k, n_envs) of the k transitions ``buffer`` received last (SB3's
    off-policy learners store each vector step as one row; the rewards there are the deferred env's zeros)."""
    k = len(learned_rewards)
    rows = (buffer.pos - k + np.arange(k)) % buffer.buffer_size
    buffer.rewards[rows] = learned_rewards.reshape(k, buffer.n_envs)


def relabel_replay(buffer: ReplayBuffer, reward: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                   unscale: Callable[[np.ndarray], np.ndarray] | None = None, chunk: int = 4096) -> int:
    """Rewrite the reward of every transition in ``buffer`` with ``reward`` (observations, actions ->
    learned rewards), as PEBBLE does after each reward-model update; returns the rows relabeled.

    ``obs_shape`` and ``action_shape`` are the env's spaces' shapes (the buffer holds a Discrete
    observation or action as one value); ``unscale`` maps the buffer's actions to the env's (SB3
    stores a Box action rescaled to [-1, 1]: ``policy.unscale_action``)."""
    n = buffer.buffer_size if buffer.full else buffer.pos
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        obs = buffer.observations[start:stop].reshape(stop - start, buffer.n_envs, *obs_shape)
        actions = buffer.actions[start:stop]
        if unscale is not None:
            actions = unscale(actions)
        actions = actions.reshape(stop - start, buffer.n_envs, *action_shape)
        buffer.rewards[start:stop] = reward(obs, actions)
    return n
