"""Per-refit diagnostics: is the reward model failing, or the RL on top of it?

The env's true reward is recorded at every step of every run (the learner never sees it), so each
refit of the ensemble can be scored against the truth on what the policy is doing *now*, not only on
the 1/e validation split of the few labels asked so far:

- **fresh pair accuracy**: random pairs of the policy's most recent clips, judged by their true
  returns as the oracle would; the share of the decided ones (true returns differ) that the learned
  reward orders the same way. A model that is right on its labels but wrong here was fitted on
  behaviour the policy has left.
- **clip and step correlation**: Pearson correlation of learned and true return over those clips,
  and of learned and true reward over the rollout's steps.
- **the reward PPO sees**: mean and std of the learned reward over the rollout's steps. A refit that
  moves them at once moves PPO's value targets at once.

Each figure is taken with the ensemble before the refit and after it, on the same clips and steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .clips import Clip

__all__ = ["RewardCheck", "check_reward", "pair_accuracy", "RefitCheck"]

LearnedRewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Maps observations (..., *obs_shape) and actions (..., *act_shape) to the learned reward (...)."""


@dataclass(frozen=True)
class RewardCheck:
    """How well one ensemble tracks the true reward on the policy's recent behaviour.

    Attributes:
        pair_accuracy: share of the decided fresh pairs the learned clip returns order as the true
            returns do (NaN if no pair was decided: every recent clip scored the same).
        decided_pairs: how many of the fresh pairs had different true returns.
        clip_corr: Pearson correlation of learned and true clip return over the recent clips (NaN if
            either is constant).
        step_corr: Pearson correlation of learned and true reward over the rollout's steps (NaN if
            either is constant).
        reward_mean: mean of the learned reward PPO sees over the rollout's steps.
        reward_std: its std.
    """

    pair_accuracy: float
    decided_pairs: int
    clip_corr: float
    step_corr: float
    reward_mean: float
    reward_std: float

    def as_dict(self, suffix: str = "") -> dict[str, float]:
        return {f"{k}{suffix}": float(v) for k, v in self.__dict__.items()}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if len(a) < 2 or a.std() < 1e-12 or b.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pair_accuracy(learned: np.ndarray, true: np.ndarray, pairs: np.ndarray) -> tuple[float, int]:
    """Share of ``pairs`` (P, 2) of indices whose true values differ that ``learned`` orders the same
    way (a learned tie counts as wrong), and how many such pairs there were."""
    t = true[pairs[:, 0]] - true[pairs[:, 1]]
    decided = t != 0
    if not decided.any():
        return float("nan"), 0
    l_diff = learned[pairs[decided, 0]] - learned[pairs[decided, 1]]
    return float(np.mean(np.sign(l_diff) == np.sign(t[decided]))), int(decided.sum())


def check_reward(learned_reward: LearnedRewardFn, clips: Sequence[Clip], pairs: np.ndarray, step_learned: np.ndarray,
                 step_true: np.ndarray) -> RewardCheck:
    """Score one ensemble against the true reward.

    Args:
        learned_reward: the ensemble's learned reward as PPO sees it.
        clips: the policy's recent clips (all of one length).
        pairs: (P, 2) indices into ``clips``: the fresh pairs, the same for every ensemble compared.
        step_learned, step_true: the ensemble's learned reward and the true reward of the rollout's
            steps (any shape, the same for both).
    """
    if clips:
        learned_clip = learned_reward(np.stack([c.obs for c in clips]), np.stack([c.actions for c in clips])).sum(-1)
        true_clip = np.array([c.true_return for c in clips])
        accuracy, decided = pair_accuracy(learned_clip, true_clip, pairs) if len(pairs) else (float("nan"), 0)
        clip_corr = _pearson(learned_clip, true_clip)
    else:
        accuracy, decided, clip_corr = float("nan"), 0, float("nan")
    return RewardCheck(accuracy, decided, clip_corr, _pearson(step_learned, step_true), float(np.mean(step_learned)),
                       float(np.std(step_learned)))


class RefitCheck:
    """The check made at each refit: the ensemble before and after it, on the same fresh pairs of
    the policy's ``n_clips`` most recent clips and on the rollout's steps.

    Pairs are drawn from the check's own random stream, so checking never changes which labels are
    asked.
    """

    def __init__(self, n_clips: int = 200, seed: int = 0):
        self.n_clips = n_clips
        self.rng = np.random.default_rng(seed)

    def fresh(self, pool: Sequence[Clip]) -> tuple[list[Clip], np.ndarray]:
        """The most recent clips of ``pool`` and random pairs of them (indices)."""
        clips = [pool[i] for i in range(max(0, len(pool) - self.n_clips), len(pool))]
        if len(clips) < 2:
            return clips, np.zeros((0, 2), np.int64)
        pairs = self.rng.integers(0, len(clips), size=(4 * len(clips), 2))
        return clips, pairs[pairs[:, 0] != pairs[:, 1]]

    def __call__(self, learned_reward: LearnedRewardFn, fresh: tuple[list[Clip], np.ndarray],
                 step_learned: np.ndarray, step_true: np.ndarray) -> RewardCheck:
        clips, pairs = fresh
        return check_reward(learned_reward, clips, pairs, step_learned, step_true)
