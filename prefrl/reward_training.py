"""Training the reward-model ensemble on labeled clip comparisons."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .losses import bradley_terry_loss
from .reward_model import RewardEnsemble

__all__ = ["ComparisonBatch", "TrainStats", "EnsembleTrainer", "is_validation"]

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

    ``left`` and ``right`` are (B, L, F) step features of the two clips; ``preference`` (B,) is the
    probability that the left clip is better (1, 0 or 0.5 for a tie).
    """

    left: torch.Tensor
    right: torch.Tensor
    preference: torch.Tensor

    @property
    def n(self) -> int:
        """Number of comparisons."""
        return len(self.preference)

    def subset(self, idx: torch.Tensor | np.ndarray) -> ComparisonBatch:
        idx = torch.as_tensor(idx, device=self.preference.device)
        return ComparisonBatch(self.left[idx], self.right[idx], self.preference[idx])


@dataclass
class TrainStats:
    """What one round of training reached (means over members)."""

    train_loss: float
    val_loss: float
    val_accuracy: float
    l2: list[float]
    n_train: int
    n_val: int


class EnsembleTrainer:
    """Fits a :class:`RewardEnsemble` to comparisons with the Bradley–Terry loss.

    Each member trains on its own bootstrap resample of the training labels. The labels held out
    for validation (1/e) set each member's L2 strength: after every epoch it grows when validation
    loss exceeds 1.5× training loss and shrinks below 1.1× (Christiano et al. 2017, App. A).

    Args:
        model: the ensemble, trained in place.
        noise: random-response probability in the preference model (the paper: 0.1).
        lr: Adam learning rate.
        epochs: passes over the training labels per call of :meth:`train`.
        min_updates: fewest gradient steps per call; with few labels, more epochs are run to reach it
            (a few epochs over 60 labels are a handful of steps, and leave the model underfit).
        batch_size: comparisons per gradient step.
        stats_sample: renormalize outputs on at most this many random steps (0: all of them; frames
            for the CNN make "all" slow).
        seed: seeds the bootstrap resamples.
    """

    def __init__(self, model: RewardEnsemble, *, noise: float = 0.1, lr: float = 1e-3, epochs: int = 8,
                 min_updates: int = 0, batch_size: int = 64, stats_sample: int = 0, l2_init: float = 1e-3, seed: int = 0):
        self.model = model
        self.noise = noise
        self.epochs = epochs
        self.min_updates = min_updates
        self.stats_sample = stats_sample
        self.batch_size = batch_size
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.l2 = torch.full((model.config.n_members,), l2_init, device=model.out_mean.device)
        self.rng = np.random.default_rng(seed)
        self._feature_stats_set = False

    def _per_member(self, returns: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Bradley–Terry loss of each member: returns (M, 2, b) of the left and right clips, target
        (M, b) or (b,). Gives (M,)."""
        target = target.expand(returns.shape[0], -1)
        return torch.stack([bradley_terry_loss(r[0], r[1], noise=self.noise, target=t)
                            for r, t in zip(returns, target)])

    def _returns(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Each member's summed raw reward of the clips: (b, L, *in_shape) shared or
        (M, b, L, *in_shape) per member in, (M, 2, b) out."""
        n_in = len(self.model.in_shape)
        b, length = left.shape[-2 - n_in:-n_in]
        x = torch.cat([left, right], dim=-2 - n_in)
        x = x.reshape(*left.shape[:-2 - n_in], 2 * b * length, *self.model.in_shape)
        return self.model.raw(x).reshape(self.model.config.n_members, 2, b, length).sum(-1)

    def _chunks(self, n: int) -> list[slice]:
        """Slices that evaluate n comparisons without holding all their frames in the CNN at once
        (1000 Atari labels in one pass would need tens of GB); the MLP takes them in one pass."""
        step = max(1, n if self.model.config.arch == "mlp" else self.batch_size)
        return [slice(i, i + step) for i in range(0, n, step)]

    @torch.no_grad()
    def _member_losses(self, batch: ComparisonBatch) -> torch.Tensor:
        """Loss of each member on the same comparisons: (M,)."""
        returns = torch.cat([self._returns(batch.left[s], batch.right[s]) for s in self._chunks(batch.n)], dim=2)
        return self._per_member(returns, batch.preference)

    def _learned_returns(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """The learned reward (normalized ensemble mean) summed over each clip: (2, b)."""
        b, length = left.shape[:2]
        x = torch.cat([left, right]).reshape(-1, *self.model.in_shape)
        return self.model(x).reshape(2, b, length).sum(-1)

    def train(self, train: ComparisonBatch, val: ComparisonBatch, epochs: int | None = None) -> TrainStats:
        """Run ``epochs`` (default: the trainer's) epochs on ``train``, adapting L2 on ``val``; then
        renormalize each member's output on the steps of all these clips. Returns the round's stats.

        Input standardization is measured on the first call's clips and then kept, so later rounds
        refine the same function instead of chasing a moving input scale.
        """
        n_members = self.model.config.n_members
        n = train.n
        if n == 0:
            raise ValueError("no labeled comparisons to train the reward model on")
        steps = torch.cat([train.left, train.right, val.left, val.right]).reshape(-1, *self.model.in_shape)
        if not self._feature_stats_set:
            self.model.set_feature_stats(steps)
            self._feature_stats_set = True
        # One bootstrap resample per member, each of the full size.
        boot = torch.as_tensor(self.rng.integers(0, n, size=(n_members, n)), device=train.preference.device)
        self.model.train()
        batches = math.ceil(n / self.batch_size)
        for _ in range(max(epochs or self.epochs, math.ceil(self.min_updates / batches))):
            perm = torch.as_tensor(self.rng.permutation(n), device=boot.device)
            epoch_loss = torch.zeros(n_members, device=boot.device)
            for start in range(0, n, self.batch_size):
                idx = boot[:, perm[start:start + self.batch_size]]  # (M, b): each member its own resample
                fit = self._per_member(self._returns(train.left[idx], train.right[idx]), train.preference[idx])
                loss = fit.sum() + (self.l2 * self.model.l2()).sum()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                epoch_loss += fit.detach() * idx.shape[1]
            if val.n:
                self._adapt_l2(epoch_loss / n, val)
        if self.stats_sample and len(steps) > self.stats_sample:
            steps = steps[torch.as_tensor(self.rng.choice(len(steps), self.stats_sample, replace=False),
                                          device=steps.device)]
        self.model.set_output_stats(steps)
        return self.evaluate(train, val)

    @torch.no_grad()
    def _adapt_l2(self, train_loss: torch.Tensor, val: ComparisonBatch) -> None:
        """Grow a member's L2 strength when its validation loss exceeds 1.5× its training loss (the
        epoch's running mean), shrink it below 1.1×."""
        self.model.eval()
        ratio = self._member_losses(val) / train_loss.clamp_min(1e-6)
        self.l2 = torch.where(ratio > 1.5, self.l2 * 1.5, torch.where(ratio < 1.1, self.l2 / 1.5, self.l2))
        self.l2 = self.l2.clamp(1e-6, 10.0)
        self.model.train()

    @torch.no_grad()
    def evaluate(self, train: ComparisonBatch, val: ComparisonBatch) -> TrainStats:
        """Mean member losses and the learned reward's accuracy on held-out non-tie comparisons."""
        self.model.eval()
        train_loss = self._member_losses(train).mean().item()
        val_loss = self._member_losses(val).mean().item() if val.n else float("nan")
        accuracy = float("nan")
        decided = val.preference != 0.5
        if decided.any():
            v = val.subset(torch.nonzero(decided).squeeze(1))
            r = torch.cat([self._learned_returns(v.left[s], v.right[s]) for s in self._chunks(v.n)], dim=1)
            accuracy = ((r[0] > r[1]).float() == v.preference).float().mean().item()
        return TrainStats(train_loss, val_loss, accuracy, self.l2.tolist(), train.n, val.n)
