"""Training the reward-model ensemble on labeled clip comparisons."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .errors import TrainingError
from .losses import bradley_terry_loss, plackett_luce_loss
from .reward_model import RewardEnsemble

__all__ = ["ComparisonBatch", "RankingBatch", "TrainStats", "EnsembleTrainer", "is_validation"]

VALIDATION_FRACTION = 1.0 / math.e  # Christiano et al. 2017, App. A: 1/e of the labels held out


def is_validation(comparison_ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """Whether each comparison is held out for validation.

    Decided by a hash of the comparison id, so a label keeps its side of the split from one round
    of training to the next (and after a resume).
    """
    h = (np.asarray(comparison_ids, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)) >> np.uint64(11)
    return (h.astype(np.float64) / float(1 << 53)) < VALIDATION_FRACTION


class ComparisonBatch(NamedTuple):
    """Labeled comparisons as tensors.

    Either ``left`` and ``right`` are (B, L, *in_shape) step features of the two clips, or, with
    ``clips`` (U, L, *in_shape) given, they are (B,) row indices into ``clips``: each clip is then
    held once however many comparisons it is in, and a comparison's frames are gathered only when a
    batch needs them. ``preference`` (B,) is the probability that the left clip is better (1, 0 or
    0.5 for a tie).
    """

    left: torch.Tensor
    right: torch.Tensor
    preference: torch.Tensor
    clips: torch.Tensor | None = None

    @property
    def n(self) -> int:
        """Number of comparisons."""
        return len(self.preference)

    def subset(self, idx: torch.Tensor | np.ndarray) -> ComparisonBatch:
        idx = torch.as_tensor(idx, device=self.preference.device)
        return ComparisonBatch(self.left[idx], self.right[idx], self.preference[idx], self.clips)

    def sides(self, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """The step features of the left and right clips of comparisons ``idx``: (*idx, L, *in_shape) each."""
        if self.clips is None:
            return self.left[idx], self.right[idx]
        return self.clips[self.left[idx]], self.clips[self.right[idx]]

    def group(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """The step features of comparisons ``idx`` as groups of K = 2 clips: (*idx, 2, L, *in_shape)."""
        if self.clips is None:
            left, right = self.sides(idx)
            return torch.stack([left, right], dim=left.dim() - self.left.dim() + 1)
        rows = torch.stack([self.left[idx], self.right[idx]], dim=-1)
        return self.clips[rows]

    def loss(self, returns: torch.Tensor, idx: torch.Tensor | slice, noise: float) -> torch.Tensor:
        """Bradley–Terry loss of one member's clip returns (b, 2) of comparisons ``idx``."""
        return bradley_terry_loss(returns[:, 0], returns[:, 1], noise=noise, target=self.preference[idx])

    def agreement(self, returns: torch.Tensor, idx: torch.Tensor | slice = slice(None)) -> tuple[int, int]:
        """How many of the decided (non-tie) comparisons ``idx`` the returns (b, 2) order as labeled, of how many."""
        preference = self.preference[idx]
        decided = preference != 0.5
        right = ((returns[decided, 0] > returns[decided, 1]).float() == preference[decided]).sum()
        return int(right), int(decided.sum())

    def member_agreement(self, returns: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member, how many of its decided comparisons ``idx`` (M, b) its returns (M, b, 2) order
        as labeled, and of how many: two (M,) tensors (no host sync)."""
        preference = self.preference[idx]
        decided = preference != 0.5
        right = (((returns[..., 0] > returns[..., 1]).float() == preference) & decided).sum(1)
        return right.float(), decided.sum(1).float()

    def rows(self) -> torch.Tensor:
        """Every clip of the batch: row indices into ``clips``, or, without ``clips``, the clips' step features."""
        return torch.cat([self.left, self.right])


class RankingBatch(NamedTuple):
    """Labeled K-wise rankings: ``items`` (B, K) row indices into ``clips`` (U, L, *in_shape), each
    row's clips best first. Trained with the Plackett–Luce loss."""

    items: torch.Tensor
    clips: torch.Tensor

    @property
    def n(self) -> int:
        """Number of rankings."""
        return len(self.items)

    def subset(self, idx: torch.Tensor | np.ndarray) -> RankingBatch:
        return RankingBatch(self.items[torch.as_tensor(idx, device=self.items.device)], self.clips)

    def group(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """Step features of rankings ``idx``, best first: (*idx, K, L, *in_shape)."""
        return self.clips[self.items[idx]]

    def loss(self, returns: torch.Tensor, idx: torch.Tensor | slice, noise: float) -> torch.Tensor:
        """Plackett–Luce loss of one member's clip returns (b, K), best first."""
        return plackett_luce_loss(returns, noise=noise)

    def agreement(self, returns: torch.Tensor, idx: torch.Tensor | slice = slice(None)) -> tuple[int, int]:
        """How many of the rankings' C(K,2) pairs the returns (b, K) order as ranked, of how many."""
        k = returns.shape[1]
        a, b = torch.triu_indices(k, k, offset=1)
        return int((returns[:, a] > returns[:, b]).sum()), returns.shape[0] * len(a)

    def member_agreement(self, returns: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member, how many of the C(K,2) pairs of its rankings ``idx`` (M, b) its returns
        (M, b, K) order as ranked, and of how many: two (M,) tensors."""
        k = returns.shape[-1]
        a, b = torch.triu_indices(k, k, offset=1)
        right = (returns[..., a] > returns[..., b]).flatten(1).sum(1).float()
        return right, torch.full_like(right, returns.shape[1] * len(a))

    def rows(self) -> torch.Tensor:
        return self.items.reshape(-1)


Batch = ComparisonBatch | RankingBatch


def _steps(batches: list[Batch], sample: int, rng: np.random.Generator | None) -> torch.Tensor:
    """The steps of every clip of the batches, flattened to (N, *in_shape); ``sample`` > 0 draws at
    most that many of them at random (with ``rng``) without gathering the rest."""
    if batches[0].clips is None:
        steps = torch.cat([b.rows() for b in batches])
        steps = steps.reshape(-1, *steps.shape[2:])
        if sample and len(steps) > sample:
            steps = steps[torch.as_tensor(rng.choice(len(steps), sample, replace=False), device=steps.device)]
        return steps
    clips = batches[0].clips
    rows = torch.cat([b.rows() for b in batches])
    length = clips.shape[1]
    if sample and len(rows) * length > sample:
        flat = torch.as_tensor(rng.choice(len(rows) * length, sample, replace=False), device=rows.device)
        return clips[rows[flat // length], flat % length]
    return clips[rows].reshape(-1, *clips.shape[2:])


@dataclass
class TrainStats:
    """What one round of training reached (means over members).

    ``train_accuracy`` is the last epoch's share of decided training comparisons (pairs within
    rankings) that each member ordered as labeled, on its own resample, before each step; ``epochs``
    is how many epochs ran (fewer than the cap when the target accuracy was reached)."""

    train_loss: float
    val_loss: float
    val_accuracy: float
    l2: list[float]
    n_train: int
    n_val: int
    train_accuracy: float = float("nan")
    epochs: int = 0


class EnsembleTrainer:
    """Fits a :class:`RewardEnsemble` to comparisons with the Bradley–Terry loss, or to K-wise
    rankings with the Plackett–Luce loss (:class:`RankingBatch`).

    Each member trains on its own bootstrap resample of the training labels. The labels held out
    for validation (1/e) set each member's L2 strength: after every epoch it grows when validation
    loss exceeds 1.5× training loss and shrinks below 1.1× (Christiano et al. 2017, App. A).

    Args:
        model: the ensemble, trained in place.
        noise: random-response probability in the preference model (the paper: 0.1).
        lr: Adam learning rate.
        epochs: passes over the training labels per call of :meth:`train`; with ``target_accuracy``,
            the most passes.
        target_accuracy: stop a call's training once the members' mean training accuracy over an
            epoch reaches this (PEBBLE: up to 200 epochs, stopped at 0.97); None runs every epoch.
        min_updates: fewest gradient steps per call; with few labels, more epochs are run to reach it
            (a few epochs over 60 labels are a handful of steps, and leave the model underfit).
        batch_size: comparisons per gradient step.
        stats_sample: renormalize outputs on at most this many random steps (0: all of them; frames
            for the CNN make "all" slow).
        refresh_feature_stats: measure the input standardization again on every call's clips (False:
            on the first call's, then kept).
        warm_start: each call continues from the model as the last one left it; False starts every
            call from fresh weights, a fresh optimizer and the initial L2 strengths, with the input
            standardization measured on that call's clips.
        seed: seeds the bootstrap resamples and the fresh weights.
        augment_shift: for frames, shift each training clip by a random whole number of pixels up to
            this far in each direction (edges repeated), the same shift on every frame of the clip
            (RAD's and DrQ's random shift, used for preference learning from pixels by SURF); a model
            with few labels then cannot fit them by where things sit on the screen. 0: off. Only
            gradient steps see shifted clips; validation and the reward PPO gets do not.
    """

    def __init__(self, model: RewardEnsemble, *, noise: float = 0.1, lr: float = 1e-3, epochs: int = 8,
                 target_accuracy: float | None = None, min_updates: int = 0, batch_size: int = 64,
                 stats_sample: int = 0, l2_init: float = 1e-3, refresh_feature_stats: bool = False,
                 warm_start: bool = True, seed: int = 0, augment_shift: int = 0):
        if target_accuracy is not None and not 0.0 < target_accuracy <= 1.0:
            raise ValueError(f"EnsembleTrainer: target_accuracy must be in (0, 1] or None, got {target_accuracy}")
        self.model = model
        self.noise = noise
        self.epochs = epochs
        self.target_accuracy = target_accuracy
        self.min_updates = min_updates
        self.stats_sample = stats_sample
        self.batch_size = batch_size
        self.lr = lr
        self.l2_init = l2_init
        self.warm_start = warm_start
        self.augment_shift = augment_shift
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.l2 = torch.full((model.config.n_members,), l2_init, device=model.out_mean.device)
        self.rng = np.random.default_rng(seed)
        self.refresh_feature_stats = refresh_feature_stats
        self._feature_stats_set = False

    def keep_feature_stats(self) -> None:
        """Keep the model's input standardization as it is (a model loaded from a saved run)."""
        self._feature_stats_set = True

    def _per_member(self, returns: torch.Tensor, batch: Batch, idx: torch.Tensor | slice) -> torch.Tensor:
        """Each member's loss (M,) on items ``idx`` (M, b) or (b,)/slice (shared) of ``batch``, from
        its clip returns (M, b, K)."""
        if not isinstance(idx, torch.Tensor) or idx.dim() == 1:
            return torch.stack([batch.loss(r, idx, self.noise) for r in returns])
        return torch.stack([batch.loss(r, i, self.noise) for r, i in zip(returns, idx)])

    def _returns(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's summed raw reward of groups of clips: (b, K, L, *in_shape) shared or
        (M, b, K, L, *in_shape) per member in, (M, b, K) out."""
        n_in = len(self.model.in_shape)
        b, k, length = x.shape[-3 - n_in:-n_in]
        x = x.reshape(*x.shape[:-3 - n_in], b * k * length, *self.model.in_shape)
        return self.model.raw(x).reshape(self.model.config.n_members, b, k, length).sum(-1)

    def _chunks(self, n: int) -> list[slice]:
        """Slices that evaluate n comparisons without holding all their frames in the CNN at once
        (1000 Atari labels in one pass would need tens of GB); the MLP takes them in one pass."""
        step = max(1, n if self.model.config.arch == "mlp" else self.batch_size)
        return [slice(i, i + step) for i in range(0, n, step)]

    def train(self, train: Batch, val: Batch, epochs: int | None = None,
              between_steps: Callable[[], object] | None = None,
              scale_on: tuple[Batch, ...] | None = None) -> TrainStats:
        """Run ``epochs`` (default: the trainer's) epochs on ``train``, or fewer once the target
        accuracy is reached, adapting L2 on ``val``; then renormalize each member's output on the
        steps of all these clips (or of ``scale_on``'s, when training on a share of the labels).
        Returns the round's stats.

        ``between_steps`` is called before each gradient step and each chunk of a pass over clips
        (validation, the output scale): an asynchronous fitter waits there while the agent's own
        update runs, so that what it computes beside that update is at most one step or chunk.

        Input standardization is measured on the first call's clips and then kept, so later rounds
        refine the same function instead of chasing a moving input scale.
        """
        n_members = self.model.config.n_members
        n = train.n
        if n == 0:
            raise ValueError("no labeled comparisons to train the reward model on")
        if not self.warm_start and self._feature_stats_set:  # every call but the first: start afresh
            self.model.reinitialize(int(self.rng.integers(2**31)))
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
            self.l2 = torch.full_like(self.l2, self.l2_init)
        if not self._feature_stats_set or self.refresh_feature_stats or not self.warm_start:
            self.model.set_feature_stats(_steps([train, val], 0, None))
            self._feature_stats_set = True
        # One bootstrap resample per member, each of the full size.
        device = train.clips.device if train.clips is not None else train.left.device
        boot = torch.as_tensor(self.rng.integers(0, n, size=(n_members, n)), device=device)
        self.model.train()
        batches = math.ceil(n / self.batch_size)
        min_epochs = math.ceil(self.min_updates / batches)
        max_epochs = max(epochs or self.epochs, min_epochs)
        accuracy = float("nan")
        for epoch in range(max_epochs):
            perm = torch.as_tensor(self.rng.permutation(n), device=boot.device)
            epoch_loss = torch.zeros(n_members, device=boot.device)
            right = torch.zeros(n_members, device=boot.device)
            total = torch.zeros(n_members, device=boot.device)
            for start in range(0, n, self.batch_size):
                if between_steps is not None:
                    between_steps()
                idx = boot[:, perm[start:start + self.batch_size]]  # (M, b): each member its own resample
                fit, r, t = self.step(train, idx)
                epoch_loss += fit * idx.shape[1]
                right += r
                total += t
            if not torch.isfinite(epoch_loss).all():
                raise TrainingError(
                    f"reward-model training diverged on {n} labels: member losses "
                    f"{[round(v, 3) for v in (epoch_loss / n).tolist()]} are not finite (NaN or inf in the clips' "
                    "features or the model's outputs); no model was saved from this fit, and every label is "
                    "still in the store")
            if between_steps is not None:
                between_steps()
            val_returns = self._member_returns(val, between_steps) if val.n else None
            if val_returns is not None:
                self._adapt_l2(epoch_loss / n, self._per_member(val_returns, val, slice(None)))
            if self.target_accuracy is not None or epoch + 1 == max_epochs:
                accuracy = (right / total).mean().item() if total.min() > 0 else float("nan")
                if self.target_accuracy is not None and epoch + 1 >= min_epochs and accuracy >= self.target_accuracy:
                    break
        if between_steps is not None:
            between_steps()
        self.model.set_output_stats(_steps(list(scale_on or (train, val)), self.stats_sample, self.rng), between_steps)
        if not (torch.isfinite(self.model.out_mean).all() and torch.isfinite(self.model.out_std).all()):
            raise TrainingError("the reward model's outputs on the labeled clips are not finite (NaN or inf): "
                                "no model was saved from this fit, and every label is still in the store")
        # The train loss reported is the last epoch's running mean over the members' resamples: a
        # second pass over every training clip would cost the CNN as much as the epoch itself.
        val_loss, val_accuracy = self._val_scores(val, val_returns)
        return TrainStats((epoch_loss / n).mean().item(), val_loss, val_accuracy,
                          self.l2.tolist(), train.n, val.n, accuracy, epoch + 1)

    def evaluate(self, val: Batch) -> tuple[float, float]:
        """The ensemble's validation loss and accuracy on ``val`` as it is now (as :meth:`train`
        reports them on its own validation labels)."""
        return self._val_scores(val, self._member_returns(val) if val.n else None)

    def _val_scores(self, val: Batch, member_returns: torch.Tensor | None) -> tuple[float, float]:
        """Validation loss and accuracy from the members' returns (M, B, K) of ``val`` (NaN for none)."""
        if member_returns is None:
            return float("nan"), float("nan")
        return self._per_member(member_returns, val, slice(None)).mean().item(), self._accuracy(val, member_returns)

    def step(self, batch: Batch, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One gradient step of every member on its own items ``idx`` (M, b) of ``batch`` (its
        Bradley–Terry or Plackett–Luce loss plus the member's L2 term). Returns each member's fit
        loss (M,), and how many of its decided comparisons it ordered as labeled before the step,
        of how many (M,) each."""
        x = batch.group(idx)
        if self.augment_shift and len(self.model.in_shape) == 3:
            x = self._shifted(x)
        returns = self._returns(x)
        fit = self._per_member(returns, batch, idx)
        loss = fit.sum() + (self.l2 * self.model.l2()).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        right, total = batch.member_agreement(returns.detach(), idx)
        return fit.detach(), right, total

    def _shifted(self, x: torch.Tensor) -> torch.Tensor:
        """Clips of frames (..., L, C, H, W), each moved by its own random (dy, dx) in
        [-augment_shift, augment_shift], the edge rows and columns repeated into the gap."""
        height, width = x.shape[-2:]
        clips = x.reshape(-1, x.shape[-4] * x.shape[-3], height, width)
        dy, dx = self.rng.integers(-self.augment_shift, self.augment_shift + 1, size=(2, len(clips)))
        out = torch.empty_like(clips)
        for n, clip in enumerate(clips):
            rows = torch.arange(height, device=x.device).add_(int(dy[n])).clamp_(0, height - 1)
            cols = torch.arange(width, device=x.device).add_(int(dx[n])).clamp_(0, width - 1)
            out[n] = clip[:, rows][:, :, cols]
        return out.reshape(x.shape)

    @torch.no_grad()
    def _member_returns(self, batch: Batch, between_chunks: Callable[[], object] | None = None) -> torch.Tensor:
        """Each member's raw clip returns of the batch's groups, in eval mode: (M, B, K);
        ``between_chunks`` is called before each chunk of them."""
        self.model.eval()
        returns = []
        for chunk in self._chunks(batch.n):
            if between_chunks is not None:
                between_chunks()
            returns.append(self._returns(batch.group(chunk)))
        self.model.train()
        return torch.cat(returns, dim=1)

    def _accuracy(self, val: Batch, member_returns: torch.Tensor | None) -> float:
        """How often the learned reward (the normalized member mean, from raw member returns
        (M, B, K) and the current output stats) orders clips as labeled: over non-tie comparisons,
        or over the pairs within rankings."""
        if member_returns is None:
            return float("nan")
        length = val.group(slice(0, 1)).shape[2]
        normalized = (member_returns - length * self.model.out_mean[:, None, None]) / self.model.out_std[:, None, None]
        right, total = val.agreement(normalized.mean(0))
        return right / total if total else float("nan")

    @torch.no_grad()
    def _adapt_l2(self, train_loss: torch.Tensor, val_loss: torch.Tensor) -> None:
        """Grow a member's L2 strength when its validation loss exceeds 1.5× its training loss (the
        epoch's running mean), shrink it below 1.1×. Both are (M,)."""
        ratio = val_loss / train_loss.clamp_min(1e-6)
        self.l2 = torch.where(ratio > 1.5, self.l2 * 1.5, torch.where(ratio < 1.1, self.l2 / 1.5, self.l2))
        self.l2 = self.l2.clamp(1e-6, 10.0)
