"""Queries: which clips to ask a teacher about (selection), and the two kinds of query, pairs and
rankings of K clips, behind one interface (:class:`QueryKind`), asked by the :class:`Querier` stage."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import torch

from .clips import Clip
from .store import PreferenceStore

__all__ = ["QUERY_STRATEGIES", "select_groups", "select_pairs", "Query", "Label", "QueryKind", "Pairs", "Rankings",
           "query_kind", "Querier"]

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


def _kept_returns(clips: Sequence[Clip]) -> torch.Tensor:
    """The member returns (M, C) the clips kept from when they were played."""
    return torch.as_tensor(np.stack([clip.member_returns for clip in clips], axis=1))


class Query(NamedTuple):
    """One stored query: its id in the store and its clips, in the order shown."""

    id: int
    clips: tuple[Clip, ...]


class Label(NamedTuple):
    """One answered query, as the reward model trains on it.

    ``clip_ids``: a pair's (left, right), with ``value`` the probability the left clip is better
    (1, 0 or 0.5); a ranking's clips best first, with ``value`` None.
    """

    id: int
    clip_ids: tuple[int, ...]
    value: float | None


class QueryKind(Protocol):
    """Pairs or rankings: how a query of ``size`` clips is stored, answered by a teacher and read back."""

    size: int

    def add(self, store: PreferenceStore, groups: list[tuple[int, ...]], source: str) -> list[int]:
        """Store queries on groups of clip ids; their ids."""

    def answer(self, teacher, queries: list[Query], store: PreferenceStore) -> list[Label]:
        """Have a synthetic teacher answer, record the answers in the store; the labels (skips left out)."""

    def labels(self, store: PreferenceStore) -> list[Label]:
        """Every answered query in the store, oldest first."""


class Pairs:
    """Pairs of clips (Bradley–Terry)."""

    size = 2

    def add(self, store: PreferenceStore, groups: list[tuple[int, ...]], source: str) -> list[int]:
        return store.add_queries([(a, b) for a, b in groups], source=source)

    def answer(self, teacher, queries: list[Query], store: PreferenceStore) -> list[Label]:
        preferences = teacher([q.clips for q in queries])
        store.record_labels([(q.id, p) for q, p in zip(queries, preferences)], labeler=teacher.name)
        return [Label(q.id, (q.clips[0].clip_id, q.clips[1].clip_id), p)
                for q, p in zip(queries, preferences) if p is not None]

    def labels(self, store: PreferenceStore) -> list[Label]:
        return [Label(c.id, (c.left_id, c.right_id), c.preference) for c in store.comparisons("labeled")]


class Rankings:
    """Rankings of ``size`` clips (Plackett–Luce); a ranking counts as one label."""

    def __init__(self, size: int):
        if size < 3:
            raise ValueError(f"Rankings: a ranking has at least 3 clips (2 is a pair: use Pairs), got {size}")
        self.size = size

    def add(self, store: PreferenceStore, groups: list[tuple[int, ...]], source: str) -> list[int]:
        return store.add_ranking_queries(groups, source=source)

    def answer(self, teacher, queries: list[Query], store: PreferenceStore) -> list[Label]:
        orders = teacher.rank([list(q.clips) for q in queries])
        store.record_rankings([(q.id, o) for q, o in zip(queries, orders)], labeler=teacher.name)
        return [Label(q.id, tuple(q.clips[i].clip_id for i in o), None)
                for q, o in zip(queries, orders) if o is not None]

    def labels(self, store: PreferenceStore) -> list[Label]:
        return [Label(r.id, r.ordered, None) for r in store.rankings("labeled")]


def query_kind(rank_size: int) -> QueryKind:
    """:class:`Pairs` for 2 clips a query, :class:`Rankings` for more."""
    return Pairs() if rank_size == 2 else Rankings(rank_size)


class Querier:
    """Picks queries from the candidate clips and stores them (and their clips) for answering.

    Args:
        kind: pairs or rankings.
        store: where clips and queries go.
        strategy: the selection strategy (:data:`QUERY_STRATEGIES`).
        member_returns: each ensemble member's return of clips, for every strategy but ``random``.
        seed: seeds selection.
        source: stored with each query (the teacher's name, or ``human``).
    """

    def __init__(self, kind: QueryKind, store: PreferenceStore, strategy: str,
                 member_returns: Callable[[Sequence[Clip]], torch.Tensor], seed: int, source: str):
        if strategy not in QUERY_STRATEGIES:
            raise ValueError(f"Querier: strategy {strategy!r} is unknown: use one of {', '.join(QUERY_STRATEGIES)}")
        self.kind = kind
        self.store = store
        self.strategy = strategy
        self.member_returns = member_returns
        self.rng = np.random.default_rng(seed)
        self.source = source
        self.asked = len(store.comparisons()) + len(store.rankings())  # a resumed run counts what it asked
        self.reused = 0  # candidate clips compared by the member returns they kept, not scored again
        # Picks by the ensemble's outputs (not random ones): those made from kept returns, those
        # that scored every candidate again, and the clips so scored.
        self.picks = {"kept_returns": 0, "scored_again": 0, "clips_scored_again": 0}

    def __call__(self, pool: list[Clip], n: int, strategy: str | None = None, scored_by: int | None = None) -> list[Query]:
        """Up to ``n`` new queries on clips of ``pool`` (fewer if there are too few distinct clips);
        clips not yet stored are stored, and ``pool`` then holds them with their ids.

        ``scored_by``: the version of the ensemble in force. When at least half the pool's clips
        were scored by it as they were played (:attr:`Clip.member_returns`), the candidates are
        those clips, compared by the returns they keep, and the ensemble is not run again; else
        every clip of the pool is a candidate, scored by ``member_returns``. A pair is never judged
        by two versions of the ensemble."""
        strategy = strategy or self.strategy
        where, scores = list(range(len(pool))), self.member_returns if strategy != "random" else None
        if scores is not None and scored_by is not None:
            fresh = [k for k, clip in enumerate(pool) if clip.scored_by == scored_by and clip.member_returns is not None]
            if 2 * len(fresh) >= len(pool):
                where, scores = fresh, _kept_returns
                self.reused += len(fresh)
        if scores is _kept_returns:
            self.picks["kept_returns"] += 1
        elif scores is not None and pool:
            self.picks["scored_again"] += 1
            self.picks["clips_scored_again"] += len(pool)
        groups = [tuple(where[k] for k in group) for group in
                  select_groups([pool[k] for k in where], n, self.kind.size, strategy, self.rng, scores)]
        if not groups:
            return []
        unsaved = sorted({k for group in groups for k in group if pool[k].clip_id is None})
        for k, clip_id in zip(unsaved, self.store.add_clips([pool[k] for k in unsaved])):
            pool[k] = dataclasses.replace(pool[k], clip_id=clip_id)
        ids = self.kind.add(self.store, [tuple(pool[k].clip_id for k in g) for g in groups], self.source)
        self.asked += len(groups)
        return [Query(i, tuple(pool[k] for k in g)) for i, g in zip(ids, groups)]
