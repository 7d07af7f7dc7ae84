"""Statistics for comparing a learned reward with the true one: Pearson and Spearman correlation
(scipy.stats), pair accuracy (unlike rank correlations, not capped by ties), and bootstrap
confidence intervals of any of them."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats

__all__ = ["ranks", "correlations", "pair_accuracy", "bootstrap_ci"]


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (for Spearman), from 0."""
    return stats.rankdata(x) - 1.0


def correlations(learned: np.ndarray, true: np.ndarray) -> tuple[float | None, float | None]:
    """Pearson and Spearman correlation (None where either side is constant or too short)."""
    learned, true = np.asarray(learned, float), np.asarray(true, float)
    if len(learned) < 3 or learned.std() == 0 or true.std() == 0:
        return None, None
    return float(stats.pearsonr(learned, true).statistic), float(stats.spearmanr(learned, true).statistic)


def pair_accuracy(learned: np.ndarray, true: np.ndarray) -> tuple[float | None, int]:
    """Over all pairs whose true values differ, the share the learned values order the same way
    (a learned tie counts as wrong); and how many such pairs there were."""
    learned, true = np.asarray(learned, float), np.asarray(true, float)
    dl = np.sign(learned[:, None] - learned[None, :])
    dt = np.sign(true[:, None] - true[None, :])
    upper = np.triu(np.ones_like(dt, dtype=bool), 1) & (dt != 0)
    n = int(upper.sum())
    return (float((dl[upper] == dt[upper]).mean()) if n else None), n


def bootstrap_ci(statistic: Callable[[np.ndarray, np.ndarray], float | None], learned: np.ndarray,
                 true: np.ndarray, n_resamples: int = 500, seed: int = 0) -> tuple[float, float] | None:
    """A 95% percentile bootstrap interval of ``statistic(learned, true)`` over items resampled in
    pairs (``scipy.stats.bootstrap``, ``paired=True``); None where the statistic is undefined on the
    data or on too many resamples (a constant side)."""
    learned, true = np.asarray(learned, float), np.asarray(true, float)
    if len(learned) < 3 or statistic(learned, true) is None:
        return None

    def value(a, b):
        v = statistic(a, b)
        return np.nan if v is None else v

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resamples that are constant give nan, counted below
        result = stats.bootstrap((learned, true), value, paired=True, vectorized=False, n_resamples=n_resamples,
                                 confidence_level=0.95, method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return None if np.isnan(low) or np.isnan(high) else (float(low), float(high))
