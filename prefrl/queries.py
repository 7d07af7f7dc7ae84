"""Query selection: which clip pairs to ask a teacher about."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .clips import Clip

__all__ = ["QUERY_STRATEGIES", "select_pairs"]

QUERY_STRATEGIES = ("random", "disagreement", "entropy", "optimistic")


def _candidate_pairs(clips: Sequence[Clip], n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to n distinct pairs of clips whose observations differ (two identical clips, such as two
    stretches of one absorbing state, tell a teacher nothing)."""
    if len(clips) < 2:
        return []
    pairs: set[tuple[int, int]] = set()
    for _ in range(20 * n):
        i, j = (int(v) for v in rng.choice(len(clips), size=2, replace=False))
        key = (min(i, j), max(i, j))
        if key in pairs or np.array_equal(clips[i].obs, clips[j].obs):
            continue
        pairs.add((i, j))
        if len(pairs) >= n:
            break
    return list(pairs)


def select_pairs(
    clips: Sequence[Clip],
    n: int,
    strategy: str,
    rng: np.random.Generator,
    member_returns: Callable[[Sequence[Clip]], torch.Tensor] | None = None,
    oversample: int = 10,
) -> list[tuple[int, int]]:
    """Choose n pairs of indices into ``clips``.

    Args:
        clips: the candidate clips (recent rollouts).
        n: how many pairs to ask about.
        strategy: ``random``; or one of these, which draw ``oversample``·n candidate pairs and keep the
            n that score highest:
            ``disagreement``, the std over members of P(left ≻ right) (Christiano et al. 2017, §2.2.4);
            ``entropy``, the entropy of the members' mean P(left ≻ right) (the pairs the ensemble
            is least sure of, B-Pref's entropy sampling);
            ``optimistic``, the higher upper confidence bound of the pair's two clips, mean + std over
            members of each member's return standardized over the candidates (pairs showing the
            behaviour that might be best, to explore it).
        member_returns: for all but ``random``, maps clips to each member's return (M, C).
    """
    if strategy not in QUERY_STRATEGIES:
        raise ValueError(f"query strategy {strategy!r} is unknown: use one of {', '.join(QUERY_STRATEGIES)}")
    if strategy == "random" or member_returns is None:
        return _candidate_pairs(clips, n, rng)
    candidates = _candidate_pairs(clips, oversample * n, rng)
    if len(candidates) <= n:
        return candidates
    used = sorted({k for pair in candidates for k in pair})
    where = {k: c for c, k in enumerate(used)}
    returns = member_returns([clips[k] for k in used])  # (M, C)
    left = torch.as_tensor([where[i] for i, _ in candidates])
    right = torch.as_tensor([where[j] for _, j in candidates])
    if strategy == "optimistic":
        z = (returns - returns.mean(1, keepdim=True)) / returns.std(1, keepdim=True).clamp_min(1e-8)
        ucb = z.mean(0) + (z.std(0) if len(z) > 1 else 0.0)  # (C,)
        score = torch.maximum(ucb[left], ucb[right])
    else:
        p = torch.sigmoid(returns[:, left] - returns[:, right])  # (M, pairs)
        if strategy == "disagreement":
            score = p.std(0)
        else:
            mean = p.mean(0).clamp(1e-7, 1 - 1e-7)
            score = -(mean * mean.log() + (1 - mean) * (1 - mean).log())
    top = torch.argsort(score, descending=True)[:n].tolist()
    return [candidates[t] for t in top]
