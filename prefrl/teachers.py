"""Synthetic teachers: they read the hidden true reward and answer comparisons."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .clips import Clip

__all__ = ["OracleTeacher", "SimulatedTeacher", "TEACHERS", "make_teacher"]


class OracleTeacher:
    """Prefers the clip with the higher true return; equal returns are a tie (0.5).

    Calling it on a list of (left, right) clip pairs returns the preference for each: 1.0 left
    better, 0.0 right better, 0.5 equal. ``tolerance`` is how close two returns must be to count as
    equal (0: exactly equal, which on integer-scored games is what "equal" means).
    """

    name = "oracle"

    def __init__(self, tolerance: float = 0.0, seed: int = 0):
        self.tolerance = tolerance
        self.rng = np.random.default_rng(seed)

    def __call__(self, pairs: Sequence[tuple[Clip, Clip]]) -> list[float | None]:
        out: list[float | None] = []
        for left, right in pairs:
            diff = left.true_return - right.true_return
            out.append(0.5 if abs(diff) <= self.tolerance else float(diff > 0))
        return out

    def rank(self, groups: Sequence[Sequence[Clip]]) -> list[list[int] | None]:
        """K-wise feedback: for each group of clips, their positions best first, by true return.

        A ranking has no ties, so clips with equal returns are ordered at random: for K = 2 that
        is, in expectation, the same training signal as the tie (0.5) of :meth:`__call__`.
        """
        out: list[list[int] | None] = []
        for group in groups:
            returns = np.array([c.true_return for c in group], float)
            # sort by return, then by a random key: equal returns in random order
            out.append(np.lexsort((self.rng.random(len(group)), -returns)).tolist())
        return out



class SimulatedTeacher:
    """B-Pref's simulated teacher (Lee et al. 2021), its noise models composable in one class.

    For a pair of clips with per-step true rewards r0 and r1 (length H), in this order:

    1. **myopic** (γ): each clip is scored by its discounted return Σ_t γ^(H−1−t)·r_t, which weighs
       the latest steps most (γ = 1: the plain return).
    2. **skip**: "can't tell" (stored as skipped, never trained on) when neither clip's score exceeds
       lo + skip·(hi − lo), where lo and hi are the lowest and highest scores among the clips of
       the current batch of queries (for rewards ≥ 0, lo ≈ 0 and this is B-Pref's skip·max).
    3. **equal**: a tie (0.5) when the scores differ by less than equal·(hi − lo).
    4. **stochastic** (β): otherwise the left clip is preferred with probability
       σ(β·(score_left − score_right)) (Boltzmann-rational); β = ∞ is the oracle's strict choice.
    5. **mistake** (ε): a strict answer is flipped with probability ε.

    Thresholds scale with the recent returns (the batch's spread) and are recomputed for each batch,
    never compounded: B-Pref multiplied its thresholds by ε again in later rounds.

    K-wise feedback (:meth:`rank`) applies the same models to a group of K clips: skip when no clip's
    score exceeds the threshold; a Plackett–Luce ranking drawn with utilities β·score (β = ∞: sorted);
    clips adjacent in it whose scores differ by less than the equal threshold swap with probability
    1/2 (a ranking has no ties); with probability ε two adjacent clips swap (a mistake). For K = 2
    each step is the pairwise rule above.

    Attributes:
        name: what the store records as the labeler.
    """

    def __init__(self, beta: float = float("inf"), gamma: float = 1.0, mistake: float = 0.0, skip: float = 0.0,
                 equal: float = 0.0, seed: int = 0, name: str = "simulated"):
        for key, value, low, high in (("beta", beta, 0.0, float("inf")), ("gamma", gamma, 0.0, 1.0),
                                      ("mistake", mistake, 0.0, 1.0), ("skip", skip, 0.0, 1.0),
                                      ("equal", equal, 0.0, 1.0)):
            if not low <= value <= high or (key == "beta" and value == 0):
                raise ValueError(f"teacher {key}={value} is out of range: use a value in "
                                 f"{'(0, inf]' if key == 'beta' else f'[{low}, {high}]'}")
        self.beta, self.gamma, self.mistake, self.skip, self.equal = beta, gamma, mistake, skip, equal
        self.rng = np.random.default_rng(seed)
        self.name = name

    def scores(self, rewards: np.ndarray) -> np.ndarray:
        """Myopic scores of clips from their per-step true rewards (..., H)."""
        h = rewards.shape[-1]
        return (rewards * self.gamma ** np.arange(h - 1, -1, -1)).sum(-1)

    def __call__(self, pairs: Sequence[tuple[Clip, Clip]]) -> list[float | None]:
        if not pairs:
            return []
        left = np.array([self.scores(np.asarray(a.true_rewards, float)) for a, _ in pairs])
        right = np.array([self.scores(np.asarray(b.true_rewards, float)) for _, b in pairs])
        lo, hi = min(left.min(), right.min()), max(left.max(), right.max())
        spread = hi - lo
        out: list[float | None] = []
        for a, b in zip(left, right):
            if self.skip and max(a, b) < lo + self.skip * spread:
                out.append(None)
                continue
            if a == b or (self.equal and abs(a - b) < self.equal * spread):
                out.append(0.5)
                continue
            if np.isinf(self.beta):
                choice = float(a > b)
            else:
                p_left = 0.5 * (1.0 + np.tanh(0.5 * self.beta * (a - b)))  # σ(β·Δ), without overflow
                choice = float(self.rng.random() < p_left)
            if self.mistake and self.rng.random() < self.mistake:
                choice = 1.0 - choice
            out.append(choice)
        return out


    def rank(self, groups: Sequence[Sequence[Clip]]) -> list[list[int] | None]:
        """K-wise feedback: each group's positions best first, or None for "can't tell"."""
        if not groups:
            return []
        scores = [np.array([self.scores(np.asarray(c.true_rewards, float)) for c in g]) for g in groups]
        lo, hi = min(s.min() for s in scores), max(s.max() for s in scores)
        spread = hi - lo
        out: list[list[int] | None] = []
        for s in scores:
            if self.skip and s.max() < lo + self.skip * spread:
                out.append(None)
                continue
            # Gumbel-max: argsort of β·s + Gumbel noise is a Plackett–Luce sample with utilities β·s;
            # β = ∞ sorts (ties in random order).
            key = s if np.isinf(self.beta) else self.beta * s + self.rng.gumbel(size=len(s))
            order = np.lexsort((self.rng.random(len(s)), -key)).tolist()
            if self.equal:
                for i in range(len(order) - 1):
                    if abs(s[order[i]] - s[order[i + 1]]) < self.equal * spread and self.rng.random() < 0.5:
                        order[i], order[i + 1] = order[i + 1], order[i]
            if self.mistake and self.rng.random() < self.mistake:
                i = int(self.rng.integers(len(order) - 1))
                order[i], order[i + 1] = order[i + 1], order[i]
            out.append(order)
        return out


# B-Pref's six named teachers (Lee et al. 2021, Sec. 4).
TEACHERS = {
    "oracle": {},
    "noisy": {"beta": 1.0},
    "myopic": {"gamma": 0.9},
    "mistake": {"mistake": 0.1},
    "skip": {"skip": 0.1},
    "equal": {"equal": 0.1},
}


def make_teacher(spec: str, seed: int = 0):
    """A teacher from ``NAME`` or ``NAME:key=value,...`` (e.g. ``noisy:beta=0.5``, ``oracle:mistake=0.2``);
    plain ``oracle`` is :class:`OracleTeacher`."""
    name, _, params = spec.partition(":")
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}: use one of {', '.join(TEACHERS)}")
    kwargs = dict(TEACHERS[name])
    for item in filter(None, params.split(",")):
        key, _, value = item.partition("=")
        if key not in ("beta", "gamma", "mistake", "skip", "equal"):
            raise ValueError(f"unknown teacher parameter {key!r} in {spec!r}: use beta, gamma, mistake, skip or equal")
        try:
            kwargs[key] = float(value)
        except ValueError:
            raise ValueError(f"teacher parameter {key}={value!r} in {spec!r} is not a number") from None
    if name == "oracle" and not kwargs:
        return OracleTeacher(seed=seed)
    return SimulatedTeacher(**kwargs, seed=seed, name=spec)
