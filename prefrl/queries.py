"""Query selection: which clip pairs to ask a teacher about."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .clips import Clip

__all__ = ["QUERY_STRATEGIES", "select_pairs"]

QUERY_STRATEGIES = ("random", "disagreement")


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
        strategy: ``random``, or ``disagreement``: draw ``oversample``·n candidate pairs and keep the
            n on which the ensemble members disagree most (std over members of P(left ≻ right);
            Christiano et al. 2017, §2.2.4).
        member_returns: for ``disagreement``, maps clips to each member's normalized return (M, C).
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
    p = torch.sigmoid(returns[:, left] - returns[:, right])  # (M, pairs)
    top = torch.argsort(p.std(0), descending=True)[:n].tolist()
    return [candidates[t] for t in top]
