"""The learned reward: the one place where steps become features and features become the reward
an agent sees (normalization and pessimism included).

Example:
    >>> reward = LearnedReward.build(env.observation_space, env.action_space)   # an untrained ensemble
    >>> reward(obs_batch, action_batch)                                           # (N,) float32
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from gymnasium import spaces

from .clips import Clip
from .reward_model import RewardEnsemble, RewardModelConfig, step_features

__all__ = ["LearnedReward"]


class LearnedReward:
    """The reward-model ensemble as a reward on (observations, actions).

    Args:
        model: the ensemble; its config says whether it reads the action and whether it takes flat
            features (MLP) or frames (CNN).
        observation_space, action_space: the env's spaces, which fix how a step becomes features.
        pessimism: the reward is the ensemble mean less this many member stds (0: the mean).
        batch_size: score at most this many steps at a time (None: all at once); bounds memory when
            scoring long episodes, and leaves the numbers as they are.
    """

    def __init__(self, model: RewardEnsemble, observation_space: spaces.Space, action_space: spaces.Space,
                 pessimism: float = 0.0, batch_size: int | None = None):
        if pessimism < 0:
            raise ValueError(f"LearnedReward: pessimism must be >= 0 (0: the ensemble mean), got {pessimism}")
        self.model = model
        self.observation_space = observation_space
        self.action_space = action_space
        self.pessimism = pessimism
        self.batch_size = batch_size

    @classmethod
    def build(cls, observation_space: spaces.Space, action_space: spaces.Space, *, arch: str = "mlp",
              use_action: bool = True, hidden: int = 64, reward_std: float = 1.0, dropout: float = 0.5,
              n_members: int = 3, pessimism: float = 0.0, device: str | torch.device = "cpu") -> LearnedReward:
        """A fresh (untrained) ensemble sized for these spaces: ``cnn`` reads (C, H, W) frames and no
        action; ``mlp`` reads the flat step features (observation, and the action if ``use_action``)."""
        if arch == "cnn":
            n_features, obs_shape = int(np.prod(observation_space.shape)), tuple(observation_space.shape)
        else:
            n_features, obs_shape = step_features(
                np.zeros((1, *observation_space.shape), np.float32), np.zeros((1, *action_space.shape)),
                observation_space, action_space, use_action).shape[-1], None
        model = RewardEnsemble(RewardModelConfig(n_features, n_members=n_members, reward_std=reward_std,
                                                 use_action=use_action, arch=arch, obs_shape=obs_shape,
                                                 hidden=hidden, dropout=dropout)).to(device)
        return cls(model, observation_space, action_space, pessimism)

    @property
    def device(self) -> torch.device:
        return self.model.out_mean.device

    def features(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Step features (..., *in_shape) of observations (..., *obs_shape) and actions (..., *act_shape)."""
        config = self.model.config
        return step_features(obs, actions, self.observation_space, self.action_space, config.use_action,
                             flatten=config.arch == "mlp")

    def __call__(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The learned reward of steps shaped (..., *obs_shape) and (..., *act_shape): (...) float32."""
        reward, _, lead = self._pass(obs, actions)
        return reward.reshape(lead).cpu().numpy()

    @property
    def version(self) -> int:
        """The ensemble's version (:attr:`RewardEnsemble.version`): raised at each refit adopted."""
        return self.model.version

    def scored(self, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The learned reward of steps, as a call gives it, and each member's unnormalized output of
        each step (..., M), from one pass: what the rollout's clips keep for query selection
        (:attr:`Clip.member_returns`)."""
        reward, raw, lead = self._pass(obs, actions)
        return reward.reshape(lead).cpu().numpy(), raw.T.reshape(*lead, -1).cpu().numpy()

    @torch.no_grad()
    def _pass(self, obs: np.ndarray, actions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
        """One pass of the ensemble over the steps: the learned reward (N,), the members' raw outputs
        (M, N) and the steps' leading shape."""
        self.model.eval()
        x = torch.as_tensor(self.features(obs, actions), device=self.device)
        lead = x.shape[:x.dim() - len(self.model.in_shape)]
        x = x.reshape(-1, *self.model.in_shape)
        step = self.batch_size or max(1, len(x))
        raw = torch.cat([self.model.raw(x[i:i + step]) for i in range(0, len(x), step)], dim=1)
        return self.model.from_raw(raw, self.pessimism), raw, lead

    @torch.no_grad()
    def member_returns(self, clips: Sequence[Clip]) -> torch.Tensor:
        """Each member's unnormalized return of each clip (M, C): the scale the members were fitted
        on, which query selection compares."""
        self.model.eval()
        step = len(clips) if self.model.config.arch == "mlp" else 32  # bounds CNN memory
        out = []
        for i in range(0, len(clips), step):
            part = clips[i:i + step]
            x = torch.as_tensor(self.features(np.stack([c.obs for c in part]), np.stack([c.actions for c in part])),
                                device=self.device)
            c, length = x.shape[:2]
            out.append(self.model.raw(x.reshape(-1, *self.model.in_shape)).reshape(-1, c, length).sum(-1))
        return torch.cat(out, dim=1)
