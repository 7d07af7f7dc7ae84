"""The reward-model ensemble: members score (observation, action) steps; their normalized outputs
are averaged into the learned reward."""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from .errors import PrefrlError

__all__ = ["RewardModelConfig", "RewardEnsemble", "step_features"]


def _gist(exc: BaseException) -> str:
    """An exception in a few words for a one-line message: its type and its first sentence."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.split(". ")[0][:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def step_features(obs: np.ndarray, actions: np.ndarray, observation_space: spaces.Space,
                  action_space: spaces.Space, use_action: bool = True, flatten: bool = True) -> np.ndarray:
    """Flat float32 features of (observation, action) steps.

    ``obs`` is (..., *obs_shape) and ``actions`` (..., *act_shape) or (...,) for discrete actions;
    the result is (..., F). Discrete actions are one-hot; Box actions are clipped to their bounds
    (SB3 stores the unclipped Gaussian sample; the env executed the clipped one). With
    ``use_action=False`` only the observation is used; ``flatten=False`` (images for the CNN, which
    sees no action) returns the observations as they are, uint8 frames included.
    """
    if not flatten:
        if use_action:
            raise ValueError("step_features: unflattened features carry no action; pass use_action=False")
        return obs
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
        n_features: size of one step's features (observation + action encoding); for ``cnn``, the
            number of values in one observation.
        n_members: ensemble size (the paper uses 3).
        hidden: width of each member's hidden layers (two for ``mlp``, the dense layer for ``cnn``).
        reward_std: std the learned reward is scaled to (the paper: 0.05 on Atari).
        use_action: whether the features include the action (r(o, a)) or only the observation (r(o)).
        arch: ``mlp`` over flat features, or ``cnn``: the paper's Atari network over stacked frames.
        obs_shape: (C, H, W) of the frames, for ``cnn``.
        dropout: dropout after each convolution of the ``cnn`` (the paper: 0.5).
    """

    n_features: int
    n_members: int = 3
    hidden: int = 64
    reward_std: float = 1.0
    use_action: bool = True
    arch: str = "mlp"
    obs_shape: tuple[int, ...] | None = None
    dropout: float = 0.5

    def __post_init__(self):
        if self.arch not in ("mlp", "cnn"):
            raise ValueError(f"reward model arch must be 'mlp' or 'cnn', got {self.arch!r}")
        if self.arch == "cnn" and (self.obs_shape is None or len(self.obs_shape) != 3 or self.use_action):
            raise ValueError(f"the cnn reward model takes (C, H, W) frames and no action, got obs_shape="
                             f"{self.obs_shape}, use_action={self.use_action}")
        if self.obs_shape is not None:
            self.obs_shape = tuple(self.obs_shape)


class _StackedLinear(nn.Module):
    """M independent linear layers applied in one batched matmul: (M, N, in) -> (M, N, out)."""

    def __init__(self, n_members: int, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_members, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_members, 1, n_out))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Uniform in ±1/sqrt(fan_in), as ``nn.Linear``; from ``generator`` if given (a private
        stream, so that a refit in a background thread never draws from torch's global one)."""
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        for p in (self.weight, self.bias):
            p.copy_(torch.rand(p.shape, generator=generator).mul_(2 * bound).sub_(bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


_BIT_SHIFTS = torch.arange(8, dtype=torch.uint8)


class _HalfDropout(torch.autograd.Function):
    """Dropout with p = 0.5 whose mask comes from random int64 words, one bit per unit.

    On CPU, ``nn.Dropout`` draws one Bernoulli sample per unit and costs more than the first
    convolution of the reward CNN; eight random bytes per 64 units cost ~1% of that. The mask
    follows torch's global generator, so ``torch.manual_seed`` still makes runs repeatable.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        n = x.numel()
        words = torch.randint(-2**63, 2**63 - 1, ((n + 63) // 64,), dtype=torch.int64, device=x.device)
        bits = (words.view(torch.uint8).unsqueeze(1) >> _BIT_SHIFTS.to(x.device)) & 1
        mask = bits.reshape(-1)[:n].reshape(x.shape).bool()
        ctx.save_for_backward(mask)
        return x * mask * 2.0

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (mask,) = ctx.saved_tensors
        return grad * mask * 2.0


class _Dropout(nn.Dropout):
    """``nn.Dropout`` (p = 0.5), with :class:`_HalfDropout` on CPU where it is the same in law and faster."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.device.type == "cpu" and self.p == 0.5:
            return _HalfDropout.apply(x)
        return super().forward(x)


def _scaled(frames: torch.Tensor) -> torch.Tensor:
    """Frames (..., C, H, W) as floats in [0, 1], channels-last (each member's slice of (M, N, C, H, W)
    too), in one copy: converting, scaling and laying out one after the other (once a member for
    shared frames) cost the scorer as much as its convolutions on a CPU."""
    *lead, c, height, width = frames.shape
    out = torch.empty(*lead, height, width, c, dtype=torch.float32, device=frames.device).movedim(-1, -3)
    return out.copy_(frames).div_(255.0)


class _MemberCNN(nn.Module):
    """The reward network of Christiano et al. 2017 (App. A.2), M members in one grouped convolution.

    Stacked frames in; four convolutions 7×7, 5×5, 3×3, 3×3 with strides 3, 2, 1, 1 and 16 filters,
    each followed by batch norm, dropout 0.5 and leaky ReLU (0.01); then a dense layer of ``hidden``
    units. Member m's filters see only member m's input channels (``groups=M``), and batch norm keeps
    per-channel, so per-member, statistics. Frames run channels-last (on CPU ~1.5× faster).
    """

    def __init__(self, n_members: int, obs_shape: tuple[int, int, int], hidden: int, dropout: float = 0.5):
        super().__init__()
        m, c, height, width = n_members, *obs_shape
        layers: list[nn.Module] = []
        channels = c
        for kernel, stride in ((7, 3), (5, 2), (3, 1), (3, 1)):
            layers += [nn.Conv2d(m * channels, m * 16, kernel, stride, groups=m), nn.BatchNorm2d(m * 16),
                       _Dropout(dropout), nn.LeakyReLU(0.01)]
            channels = 16
            height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        self.convs = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.dense = _StackedLinear(m, 16 * height * width, hidden)
        self.n_members = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (N, C, H, W) shared, or (M, N, C, H, W) per member, to (M, N, hidden)."""
        x = _scaled(x)
        h = self._members_one_by_one(x) if x.device.type == "cpu" else self._grouped(x)
        return nn.functional.leaky_relu(self.dense(h), 0.01)

    def _grouped(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions of all members at once, as grouped convolutions (the path on a GPU):
        (N, C, H, W) or (M, N, C, H, W) in, (M, N, features) out."""
        m = self.n_members
        if x.dim() == 4:
            x = x.repeat(1, m, 1, 1)
        else:
            x = x.transpose(0, 1).reshape(x.shape[1], m * x.shape[2], *x.shape[3:])
        h = self.convs(x.contiguous(memory_format=torch.channels_last))
        return h.contiguous().reshape(h.shape[0], m, -1).transpose(0, 1)

    def _members_one_by_one(self, x: torch.Tensor) -> torch.Tensor:
        """The grouped convolutions computed member by member, each on its own slice of the same
        weights and batch-norm buffers (the result, and the state dict, are the grouped layers'):
        on a CPU the grouped convolution is the slow path (a shared input would first be copied M
        times), and separate ones train ~1.4× and score ~1.8× faster on one core. Out of training,
        each batch norm is folded into the convolution before it. (N, C, H, W) or (M, N, C, H, W) in,
        (M, N, features) out."""
        m = self.n_members
        layers = list(self.convs)  # (convolution, batch norm, dropout, activation) four times
        out = []
        for k in range(m):
            h = (x if x.dim() == 4 else x[k]).contiguous(memory_format=torch.channels_last)
            for i in range(0, len(layers), 4):
                conv, norm, drop, act = layers[i:i + 4]
                part = slice(k * norm.num_features // m, (k + 1) * norm.num_features // m)
                weight, bias = conv.weight[part], conv.bias[part]
                mean, var = norm.running_mean[part], norm.running_var[part]
                if self.training:
                    h = nn.functional.conv2d(h, weight, bias, conv.stride)
                    h = nn.functional.batch_norm(h, mean, var, norm.weight[part], norm.bias[part], True,
                                                 norm.momentum, norm.eps)
                    if k == 0:  # counted once a call, as the grouped layer does
                        norm.num_batches_tracked.add_(1)
                    h = drop(h)
                else:
                    scale = norm.weight[part] * torch.rsqrt(var + norm.eps)
                    h = nn.functional.conv2d(h, weight * scale[:, None, None, None],
                                             (bias - mean) * scale + norm.bias[part], conv.stride)
                h = act(h)
            out.append(h.contiguous().reshape(h.shape[0], -1))
        return torch.stack(out)


class RewardEnsemble(nn.Module):
    """M members over step features, trained together but on separate data.

    ``member_rewards(x)`` gives each member's normalized per-step output (M, N); ``forward(x)`` the
    learned reward (N,): the members' mean, scaled to ``reward_std``. MLP inputs are standardized
    with stored feature statistics (CNN inputs are frames scaled to [0, 1]); outputs with per-member
    mean and std measured on data (:meth:`set_output_stats`), so members on different scales average
    fairly.
    """

    def __init__(self, config: RewardModelConfig):
        super().__init__()
        self.config = config
        m, f, h = config.n_members, config.n_features, config.hidden
        if config.arch == "cnn":
            self.cnn = _MemberCNN(m, config.obs_shape, h, config.dropout)
            self.layers = nn.ModuleList([_StackedLinear(m, h, 1)])
        else:
            self.layers = nn.ModuleList([_StackedLinear(m, f, h), _StackedLinear(m, h, h), _StackedLinear(m, h, 1)])
        self.register_buffer("feature_mean", torch.zeros(f))
        self.register_buffer("feature_std", torch.ones(f))
        self.register_buffer("out_mean", torch.zeros(m))
        self.register_buffer("out_std", torch.ones(m))
        # Which weights these are: a fitter adds 1 each time it adopts a refit into the live
        # ensemble, so member outputs kept from an earlier version are known to be stale.
        self.version = 0

    @property
    def in_shape(self) -> tuple[int, ...]:
        """The shape of one step's input: (F,) for the MLP, (C, H, W) for the CNN."""
        return self.config.obs_shape if self.config.arch == "cnn" else (self.config.n_features,)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalized member outputs (M, N) for inputs x: (N, *in_shape) shared by all members, or
        (M, N, *in_shape) with each member's own rows."""
        if self.config.arch == "cnn":
            return self.layers[-1](self.cnn(x)).squeeze(-1)
        h = (x - self.feature_mean) / self.feature_std
        if h.dim() == 2:
            h = h.unsqueeze(0).expand(self.config.n_members, -1, -1)
        for layer in self.layers[:-1]:
            h = torch.relu(layer(h))
        return self.layers[-1](h).squeeze(-1)

    def member_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's output normalized to mean 0, std 1: (M, N)."""
        return self._normalized(self.raw(x))

    def _normalized(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.out_mean[:, None]) / self.out_std[:, None]

    def forward(self, x: torch.Tensor, pessimism: float = 0.0) -> torch.Tensor:
        """The learned reward: the members' mean normalized output, less ``pessimism`` times their std
        (a lower confidence bound: PPO is steered away from states the members disagree on),
        scaled to ``reward_std``."""
        return self.from_raw(self.raw(x), pessimism)

    def from_raw(self, raw: torch.Tensor, pessimism: float = 0.0) -> torch.Tensor:
        """The learned reward (N,) of unnormalized member outputs (M, N), as :meth:`forward` gives it."""
        members = self._normalized(raw)
        reward = members.mean(0)
        if pessimism and len(members) > 1:
            reward = reward - pessimism * members.std(0)
        return reward * self.config.reward_std

    def reinitialize(self, seed: int) -> None:
        """Draw every weight afresh from a generator seeded with ``seed`` (torch's global random
        stream is not touched); input and output statistics are kept until measured again."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, _StackedLinear):
                module.reset_parameters(generator)
            elif isinstance(module, (nn.Conv2d, nn.BatchNorm2d)):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
                    module.reset_parameters()

    def l2(self) -> torch.Tensor:
        """Squared weight norm of each member: (M,)."""
        m = self.config.n_members
        stacked = [layer.weight.pow(2).sum(dim=(1, 2)) for layer in self.modules() if isinstance(layer, _StackedLinear)]
        convs = [conv.weight.pow(2).reshape(m, -1).sum(1) for conv in self.modules() if isinstance(conv, nn.Conv2d)]
        return sum(convs + stacked)

    @torch.no_grad()
    def set_feature_stats(self, x: torch.Tensor) -> None:
        if self.config.arch == "cnn":
            return  # frames are scaled in the network
        self.feature_mean.copy_(x.mean(0))
        self.feature_std.copy_(x.std(0).clamp_min(1e-3) if len(x) > 1 else torch.ones_like(self.feature_std))

    @torch.no_grad()
    def set_output_stats(self, x: torch.Tensor, between_chunks: Callable[[], object] | None = None) -> None:
        """Measure each member's output mean and std on inputs x (N, *in_shape), in eval mode (frames
        for the CNN go through in chunks of 256, ``between_chunks`` called before each)."""
        training = self.training
        self.eval()
        chunk = 256 if self.config.arch == "cnn" else max(1, len(x))
        raw = []
        for i in range(0, len(x), chunk):
            if between_chunks is not None:
                between_chunks()
            raw.append(self.raw(x[i:i + chunk]))
        raw = torch.cat(raw, dim=1)
        self.train(training)
        self.out_mean.copy_(raw.mean(1))
        self.out_std.copy_(raw.std(1).clamp_min(1e-6) if raw.shape[1] > 1 else torch.ones_like(self.out_std))

    def save(self, directory: str | Path) -> None:
        """Write ``reward_model.pt`` (a plain state_dict) and ``reward_model.json`` (the config)."""
        directory = Path(directory)
        # Each file is written beside its final name, then moved over it: a kill or a full disk
        # mid-save leaves the previous model whole (and no partial file beside it).
        weights, shape = directory / "reward_model.pt.tmp", directory / "reward_model.json.tmp"
        try:
            torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, weights)
            shape.write_text(json.dumps(asdict(self.config), indent=2))
            os.replace(weights, directory / "reward_model.pt")
            os.replace(shape, directory / "reward_model.json")
        except RuntimeError:
            # torch's zip writer reports a full disk as an internal error ("unexpected pos"): say what it is
            if shutil.disk_usage(directory).free < 1 << 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(weights)) from None
            raise
        finally:
            weights.unlink(missing_ok=True)
            shape.unlink(missing_ok=True)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> RewardEnsemble:
        """Load a saved ensemble; only tensors are read (``weights_only=True``), no code runs."""
        directory = Path(directory)
        shape, weights = directory / "reward_model.json", directory / "reward_model.pt"
        restore = "restore it from a backup, or train the run again"
        try:
            config = RewardModelConfig(**json.loads(shape.read_text()))
        except FileNotFoundError:
            raise PrefrlError(f"{directory} holds reward_model.pt but no reward_model.json: {restore}") from None
        except (ValueError, TypeError) as exc:  # not JSON, not an object, unknown or bad fields
            raise PrefrlError(f"{shape} is not a prefrl reward model's description ({_gist(exc)}): {restore}") from None
        model = cls(config)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise PrefrlError(f"{directory} holds reward_model.json but no reward_model.pt: {restore}") from None
        except pickle.UnpicklingError:
            # weights_only refused an object that is not a tensor: a file that would run code if loaded.
            raise PrefrlError(f"{weights} is not a prefrl reward model: it holds Python objects besides tensors, "
                              "which could run code if loaded; do not load it, and take the run from its source "
                              "again") from None
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise PrefrlError(f"{weights} is damaged ({_gist(exc)}): {restore}") from None
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise PrefrlError(f"{weights} does not fit {shape} ({_gist(exc)}): the two files come from different "
                              f"runs; {restore}") from None
        return model.to(device)
