"""``metrics.csv``: one row per PPO update, the true score beside the learned reward."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import safe_mean

__all__ = ["MetricsLog", "EachRollout"]


class MetricsLog:
    """Writes one row of ``metrics.csv`` per PPO update (per ``every`` env steps at most: A2C updates
    every 80 steps)."""

    FIELDS = ["timesteps", "labels", "true_episode_return", "learned_episode_return", "rm_val_accuracy",
              "rm_val_loss", "rm_train_loss", "wall_seconds"]
    # Per rollout of a learned-reward run: the mean true and learned reward per step; on a rollout
    # after which the ensemble was refit (refit = 1), the checks of the ensemble before and after
    # the refit against the true reward (prefrl.diagnostics).
    ROLLOUT = ["true_reward", "learned_reward", "refit", "rm_train_accuracy", "rm_epochs"] + [
        f"{key}_{when}" for when in ("before", "after")
        for key in ("pair_accuracy", "decided_pairs", "clip_corr", "step_corr", "reward_mean", "reward_std")]

    def __init__(self, path: Path, start: float, every: int = 0, append: bool = False, learned: bool = True,
                 resumed_from: int | None = None):
        """``append``: a resumed run goes on in the file it has, with its columns; the rows the killed
        run logged after ``resumed_from`` (its last checkpoint's step) are dropped, so the file stays
        one history with steps that only go up, and ``wall_seconds`` goes on from the last row kept."""
        self._every = every
        self._last = -every
        fresh = not (append and path.exists())
        self._fields = self.FIELDS + ([f"rollout_{k}" if k in ("true_reward", "learned_reward") else k
                                       for k in self.ROLLOUT] if learned else [])
        kept: list[dict] = []
        if not fresh:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                self._fields = list(reader.fieldnames or self._fields)
                kept = [r for r in reader if resumed_from is None or int(r["timesteps"]) <= resumed_from]
        self._file = path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self._fields, extrasaction="ignore")
        self._writer.writeheader()
        self._writer.writerows(kept)
        self._file.flush()
        # wall_seconds goes on from the last kept row: the run's time, the killed process's included
        self._start = start - (float(kept[-1]["wall_seconds"]) if kept and kept[-1].get("wall_seconds") else 0.0)

    def row(self, model, labels: int | None = None, learned: list[float] | None = None, stats=None,
            rollout: dict[str, float] | None = None) -> None:
        if model.num_timesteps - self._last < self._every:
            return
        self._last = model.num_timesteps
        row = {
            "timesteps": model.num_timesteps,
            "labels": labels if labels is not None else "",
            "true_episode_return": _fmt(safe_mean([ep["r"] for ep in model.ep_info_buffer])),
            "learned_episode_return": _fmt(np.mean(learned[-20:])) if learned else "",
            "rm_val_accuracy": _fmt(stats.val_accuracy) if stats else "",
            "rm_val_loss": _fmt(stats.val_loss) if stats else "",
            "rm_train_loss": _fmt(stats.train_loss) if stats else "",
            "wall_seconds": f"{time.time() - self._start:.1f}",
        }
        if rollout:
            row.update({("rollout_" + k if k in ("true_reward", "learned_reward") else k): _fmt(v)
                        for k, v in rollout.items()})
            if rollout.get("refit") and stats:
                row.update(rm_train_accuracy=_fmt(stats.train_accuracy), rm_epochs=stats.epochs)
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


class EachRollout(BaseCallback):
    """Calls ``fn(model)`` after each rollout: the metrics of the true-reward baseline."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.fn(self.model)
