"""When labels are asked for during training."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LabelSchedule"]


@dataclass(frozen=True)
class LabelSchedule:
    """How many labels should exist by timestep T.

    ``initial`` labels on random-policy clips come first; the rest arrive at a rate proportional to
    t0 / (T + t0) (Christiano et al. 2017, App. A: t0 = 5e6 on Atari), so the count by T is

        initial + (total − initial) · log(1 + T/t0) / log(1 + total_timesteps/t0),

    which reaches ``total`` at ``total_timesteps``, or at ``labels_until`` where that is earlier.

    Attributes:
        total: the label budget of the run.
        initial: labels asked before RL starts.
        total_timesteps: the run's length in env steps.
        t0: the decay constant of the rate, in timesteps.
        labels_until: the timestep by which every label has been asked (None: ``total_timesteps``),
            so that the policy still has time to learn from the last ones.
    """

    total: int
    initial: int
    total_timesteps: int
    t0: float
    labels_until: int | None = None

    def __post_init__(self):
        if self.total < 1:
            raise ValueError(f"the label budget must be at least 1, got {self.total}")
        if not 0 < self.initial <= self.total:
            raise ValueError(f"initial labels must be in 1..{self.total}, got {self.initial}")
        if self.total_timesteps < 1 or self.t0 <= 0:
            raise ValueError(f"total_timesteps and t0 must be positive, got {self.total_timesteps} and {self.t0}")
        if self.labels_until is not None and not 0 < self.labels_until <= self.total_timesteps:
            raise ValueError(f"labels_until must be in 1..{self.total_timesteps}, got {self.labels_until}")

    def target(self, timestep: int) -> int:
        """Labels that should have been asked for by ``timestep``."""
        end = self.labels_until or self.total_timesteps
        frac = math.log1p(min(timestep, end) / self.t0) / math.log1p(end / self.t0)
        return min(self.total, self.initial + int(round((self.total - self.initial) * frac)))
