"""Query selection: which clip pairs to ask a teacher about."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .clips import Clip

__all__ = ["QUERY_STRATEGIES", "select_groups", "select_pairs"]

QUERY_STRATEGIES = ("random", "disagreement", "entropy", "optimistic")


def _candidate_groups(clips: Sequence[Clip], n: int, k: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Up to n distinct groups of k clips whose observations all differ (two identical clips, such as
    two stretches of one absorbing state, tell a teacher nothing)."""
    if len(clips) < k:
        return []
    groups: dict[tuple[int, ...], tuple[int, ...]] = {}
    for _ in range(20 * n):
        group = tuple(int(v) for v in rng.choice(len(clips), size=k, replace=False))
        key = tuple(sorted(group))
        if key in groups or any(np.array_equal(clips[a].obs, clips[b].obs)
                                for x, a in enumerate(group) for b in group[x + 1:]):
            continue
        groups[key] = group
        if len(groups) >= n:
            break
    return list(groups.values())


def select_groups(
    clips: Sequence[Clip],
    n: int,
    k: int,
    strategy: str,
    rng: np.random.Generator,
    member_returns: Callable[[Sequence[Clip]], torch.Tensor] | None = None,
    oversample: int = 10,
) -> list[tuple[int, ...]]:
    """Choose n groups of k indices into ``clips`` (k = 2: pairs).

    Args:
        clips: the candidate clips (recent rollouts).
        n: how many groups to ask about.
        k: clips per group.
        strategy: ``random``; or one of these, which draw ``oversample``·n candidate groups and keep
            the n that score highest (for k > 2 a group's score is the mean over its C(k,2) pairs):
            ``disagreement``, the std over members of P(left ≻ right) (Christiano et al. 2017, §2.2.4);
            ``entropy``, the entropy of the members' mean P(left ≻ right) (the pairs the ensemble
            is least sure of, B-Pref's entropy sampling);
            ``optimistic``, the highest upper confidence bound among the group's clips, mean + std
            over members of each member's return standardized over the candidates (groups showing
            the behaviour that might be best, to explore it).
        member_returns: for all but ``random``, maps clips to each member's return (M, C).
    """
    if strategy not in QUERY_STRATEGIES:
        raise ValueError(f"query strategy {strategy!r} is unknown: use one of {', '.join(QUERY_STRATEGIES)}")
    if strategy == "random" or member_returns is None:
        return _candidate_groups(clips, n, k, rng)
    candidates = _candidate_groups(clips, oversample * n, k, rng)
    if len(candidates) <= n:
        return candidates
    used = sorted({i for group in candidates for i in group})
    where = {i: c for c, i in enumerate(used)}
    returns = member_returns([clips[i] for i in used])  # (M, C)
    members = torch.as_tensor([[where[i] for i in group] for group in candidates])  # (G, k)
    if strategy == "optimistic":
        z = (returns - returns.mean(1, keepdim=True)) / returns.std(1, keepdim=True).clamp_min(1e-8)
        ucb = z.mean(0) + (z.std(0) if len(z) > 1 else 0.0)  # (C,)
        score = ucb[members].max(1).values
    else:
        a, b = torch.triu_indices(k, k, offset=1)
        p = torch.sigmoid(returns[:, members[:, a]] - returns[:, members[:, b]])  # (M, G, pairs)
        if strategy == "disagreement":
            score = p.std(0).mean(1)
        else:
            mean = p.mean(0).clamp(1e-7, 1 - 1e-7)
            score = -(mean * mean.log() + (1 - mean) * (1 - mean).log()).mean(1)
    top = torch.argsort(score, descending=True)[:n].tolist()
    return [candidates[t] for t in top]


def select_pairs(
    clips: Sequence[Clip],
    n: int,
    strategy: str,
    rng: np.random.Generator,
    member_returns: Callable[[Sequence[Clip]], torch.Tensor] | None = None,
    oversample: int = 10,
) -> list[tuple[int, int]]:
    """Choose n pairs of indices into ``clips``: :func:`select_groups` with k = 2."""
    return select_groups(clips, n, 2, strategy, rng, member_returns, oversample)  # type: ignore[return-value]
