"""The reward-model ensemble: members score (observation, action) steps; their normalized outputs
are averaged into the learned reward."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

__all__ = ["RewardModelConfig", "RewardEnsemble", "step_features"]


def step_features(obs: np.ndarray, actions: np.ndarray, observation_space: spaces.Space,
                  action_space: spaces.Space, use_action: bool = True) -> np.ndarray:
    """Flat float32 features of (observation, action) steps.

    ``obs`` is (..., *obs_shape) and ``actions`` (..., *act_shape) or (...,) for discrete actions;
    the result is (..., F). Discrete actions are one-hot; Box actions are clipped to their bounds
    (SB3 stores the unclipped Gaussian sample; the env executed the clipped one). With
    ``use_action=False`` only the observation is used.
    """
    lead = obs.shape[: obs.ndim - len(observation_space.shape)]
    flat_obs = obs.reshape(*lead, -1).astype(np.float32, copy=False)
    if not use_action:
        return flat_obs
    if isinstance(action_space, spaces.Discrete):
        idx = actions.reshape(*lead).astype(np.int64) - int(action_space.start)
        act = np.eye(int(action_space.n), dtype=np.float32)[idx]
    elif isinstance(action_space, spaces.Box):
        act = np.clip(actions.reshape(*lead, -1), action_space.low.reshape(-1), action_space.high.reshape(-1))
        act = act.astype(np.float32, copy=False)
    else:
        raise ValueError(f"reward model: action space {action_space} is not supported (Discrete or Box only)")
    return np.concatenate([flat_obs, act], axis=-1)


@dataclass
class RewardModelConfig:
    """Shape of the ensemble.

    Attributes:
        n_features: size of one step's features (observation + action encoding).
        n_members: ensemble size (the paper uses 3).
        hidden: width of each member's two hidden layers.
        reward_std: std the learned reward is scaled to (the paper: 0.05 on Atari).
        use_action: whether the features include the action (r(o, a)) or only the observation (r(o)).
    """

    n_features: int
    n_members: int = 3
    hidden: int = 64
    reward_std: float = 1.0
    use_action: bool = True


class _StackedLinear(nn.Module):
    """M independent linear layers applied in one batched matmul: (M, N, in) -> (M, N, out)."""

    def __init__(self, n_members: int, n_in: int, n_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(n_members, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_members, 1, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class RewardEnsemble(nn.Module):
    """M MLP members over step features, trained together but on separate data.

    ``member_rewards(x)`` gives each member's normalized per-step output (M, N); ``forward(x)`` the
    learned reward (N,): the members' mean, scaled to ``reward_std``. Inputs are standardized with
    stored feature statistics; outputs with per-member mean and std measured on data
    (:meth:`set_output_stats`), so members on different scales average fairly.
    """

    def __init__(self, config: RewardModelConfig):
        super().__init__()
        self.config = config
        m, f, h = config.n_members, config.n_features, config.hidden
        self.layers = nn.ModuleList([_StackedLinear(m, f, h), _StackedLinear(m, h, h), _StackedLinear(m, h, 1)])
        self.register_buffer("feature_mean", torch.zeros(f))
        self.register_buffer("feature_std", torch.ones(f))
        self.register_buffer("out_mean", torch.zeros(m))
        self.register_buffer("out_std", torch.ones(m))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalized member outputs (M, N) for features x: (N, F) shared by all members, or
        (M, N, F) with each member's own rows."""
        h = (x - self.feature_mean) / self.feature_std
        if h.dim() == 2:
            h = h.unsqueeze(0).expand(self.config.n_members, -1, -1)
        for layer in self.layers[:-1]:
            h = torch.relu(layer(h))
        return self.layers[-1](h).squeeze(-1)

    def member_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's output normalized to mean 0, std 1: (M, N)."""
        return (self.raw(x) - self.out_mean[:, None]) / self.out_std[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_rewards(x).mean(0) * self.config.reward_std

    def l2(self) -> torch.Tensor:
        """Squared weight norm of each member: (M,)."""
        return sum(layer.weight.pow(2).sum(dim=(1, 2)) for layer in self.layers)

    @torch.no_grad()
    def set_feature_stats(self, x: torch.Tensor) -> None:
        self.feature_mean.copy_(x.mean(0))
        self.feature_std.copy_(x.std(0).clamp_min(1e-3) if len(x) > 1 else torch.ones_like(self.feature_std))

    @torch.no_grad()
    def set_output_stats(self, x: torch.Tensor) -> None:
        raw = self.raw(x)
        self.out_mean.copy_(raw.mean(1))
        self.out_std.copy_(raw.std(1).clamp_min(1e-6) if raw.shape[1] > 1 else torch.ones_like(self.out_std))

    def save(self, directory: str | Path) -> None:
        """Write ``reward_model.pt`` (a plain state_dict) and ``reward_model.json`` (the config)."""
        directory = Path(directory)
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, directory / "reward_model.pt")
        (directory / "reward_model.json").write_text(json.dumps(asdict(self.config), indent=2))

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> RewardEnsemble:
        """Load a saved ensemble; only tensors are read (``weights_only=True``), no code runs."""
        directory = Path(directory)
        config = RewardModelConfig(**json.loads((directory / "reward_model.json").read_text()))
        model = cls(config)
        model.load_state_dict(torch.load(directory / "reward_model.pt", map_location="cpu", weights_only=True))
        return model.to(device)
