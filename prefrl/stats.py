"""Rank statistics for comparing a learned reward with the true one: Pearson and Spearman
correlation, and pair accuracy (unlike rank correlations, not capped by ties)."""

from __future__ import annotations

import numpy as np

__all__ = ["ranks", "correlations", "pair_accuracy"]


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (for Spearman)."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    for value in np.unique(x):
        tied = x == value
        r[tied] = r[tied].mean()
    return r


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def correlations(learned: np.ndarray, true: np.ndarray) -> tuple[float | None, float | None]:
    """Pearson and Spearman correlation (None where either side is constant or too short)."""
    learned, true = np.asarray(learned, float), np.asarray(true, float)
    return _pearson(learned, true), _pearson(ranks(learned), ranks(true))


def pair_accuracy(learned: np.ndarray, true: np.ndarray) -> tuple[float | None, int]:
    """Over all pairs whose true values differ, the share the learned values order the same way
    (a learned tie counts as wrong); and how many such pairs there were."""
    learned, true = np.asarray(learned, float), np.asarray(true, float)
    dl = np.sign(learned[:, None] - learned[None, :])
    dt = np.sign(true[:, None] - true[None, :])
    upper = np.triu(np.ones_like(dt, dtype=bool), 1) & (dt != 0)
    n = int(upper.sum())
    return (float((dl[upper] == dt[upper]).mean()) if n else None), n
