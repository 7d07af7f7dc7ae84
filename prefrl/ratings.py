"""Scores of clips from stored comparisons (Elo, Bradley–Terry maximum likelihood), intransitive
triples, and how far labelers agree with each other and with the oracle.

Comparisons come in as ``(left_id, right_id, preference)`` with ``preference`` the probability that
the left clip is better (1, 0 or 0.5 for a tie); skipped comparisons are left out by the caller.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
import torch

from .losses import bradley_terry_loss

__all__ = ["elo", "bradley_terry_scores", "intransitive_triples", "labeler_agreement"]

Pref = tuple[int, int, float]


def elo(comparisons: Iterable[Pref], k: float = 32.0, initial: float = 1000.0) -> dict[int, float]:
    """Elo ratings after playing the comparisons in the order given (a tie scores 0.5 each).

    Each comparison moves both ratings by k·(score − expected), expected = 1/(1 + 10^((r_b − r_a)/400)).
    The result depends on the order, as Elo does; :func:`bradley_terry_scores` does not.
    """
    rating: dict[int, float] = defaultdict(lambda: initial)
    for a, b, score in comparisons:
        expected = 1.0 / (1.0 + 10.0 ** ((rating[b] - rating[a]) / 400.0))
        rating[a] += k * (score - expected)
        rating[b] -= k * (score - expected)
    return dict(rating)


def bradley_terry_scores(comparisons: Sequence[Pref], l2: float = 1e-3, steps: int = 500) -> dict[int, float]:
    """Maximum-likelihood Bradley–Terry scores s, P(a ≻ b) = σ(s_a − s_b), with ties as 0.5 targets.

    Fitted with L-BFGS on :func:`prefrl.losses.bradley_terry_loss` (the loss the reward model trains
    with) plus a small L2 term, which keeps scores finite for a clip that won every comparison;
    the scores are centred on 0.
    """
    if not comparisons:
        return {}
    ids = sorted({i for a, b, _ in comparisons for i in (a, b)})
    index = {clip_id: k for k, clip_id in enumerate(ids)}
    left = torch.tensor([index[a] for a, _, _ in comparisons])
    right = torch.tensor([index[b] for _, b, _ in comparisons])
    target = torch.tensor([p for _, _, p in comparisons], dtype=torch.float64)
    scores = torch.zeros(len(ids), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([scores], max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = bradley_terry_loss(scores[left], scores[right], target=target) + l2 * scores.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    s = scores.detach()
    s = s - s.mean()
    return {clip_id: float(s[k]) for clip_id, k in index.items()}


def intransitive_triples(comparisons: Iterable[Pref]) -> list[tuple[int, int, int]]:
    """Triples of clips whose strict preferences form a cycle a ≻ b ≻ c ≻ a (each listed once).

    A pair compared more than once counts by its mean preference; ties are not strict.
    """
    votes: dict[tuple[int, int], list[float]] = defaultdict(list)
    for a, b, p in comparisons:
        if a > b:
            a, b, p = b, a, 1.0 - p
        votes[(a, b)].append(p)
    beats: dict[int, set[int]] = defaultdict(set)
    for (a, b), ps in votes.items():
        m = float(np.mean(ps))
        if m > 0.5:
            beats[a].add(b)
        elif m < 0.5:
            beats[b].add(a)
    cycles = set()
    for a in list(beats):
        for b in beats[a]:
            for c in beats.get(b, ()):
                if a in beats.get(c, ()):
                    k = min(range(3), key=lambda i: (a, b, c)[i])
                    cycles.add(((a, b, c) * 2)[k:k + 3])
    return sorted(cycles)


def labeler_agreement(labels: Iterable[tuple[str, int, int, float]], oracle: dict[tuple[int, int], float] | None = None
                      ) -> dict:
    """How often labelers give the same answer.

    ``labels`` are (labeler, left_id, right_id, preference). Returns, for each pair of labelers,
    the share of clip pairs both labeled on which they agree (and how many such pairs), and, with
    ``oracle`` mapping (left_id, right_id) to the oracle's preference, each labeler's agreement with
    it. Answers agree when they are equal (left, right or tie).
    """
    answers: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
    for who, a, b, p in labels:
        key, p = ((a, b), p) if a < b else ((b, a), 1.0 - p)
        answers[who][key] = p
    between = {}
    for x, y in combinations(sorted(answers), 2):
        shared = answers[x].keys() & answers[y].keys()
        if shared:
            agree = sum(answers[x][k] == answers[y][k] for k in shared)
            between[f"{x} vs {y}"] = {"agreement": agree / len(shared), "pairs": len(shared)}
    with_oracle = {}
    if oracle:
        normalized = {((a, b) if a < b else (b, a)): (p if a < b else 1.0 - p) for (a, b), p in oracle.items()}
        for who, given in answers.items():
            shared = given.keys() & normalized.keys()
            if shared and who != "oracle":
                agree = sum(given[k] == normalized[k] for k in shared)
                with_oracle[who] = {"agreement": agree / len(shared), "pairs": len(shared)}
    return {"between_labelers": between, "with_oracle": with_oracle}
