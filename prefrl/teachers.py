"""Synthetic teachers: they read the hidden true reward and answer comparisons."""

from __future__ import annotations

from collections.abc import Sequence

from .clips import Clip

__all__ = ["OracleTeacher"]


class OracleTeacher:
    """Prefers the clip with the higher true return; equal returns are a tie (0.5).

    Calling it on a list of (left, right) clip pairs returns the preference for each: 1.0 left
    better, 0.0 right better, 0.5 equal. ``tolerance`` is how close two returns must be to count as
    equal (0: exactly equal, which on integer-scored games is what "equal" means).
    """

    name = "oracle"

    def __init__(self, tolerance: float = 0.0):
        self.tolerance = tolerance

    def __call__(self, pairs: Sequence[tuple[Clip, Clip]]) -> list[float | None]:
        out: list[float | None] = []
        for left, right in pairs:
            diff = left.true_return - right.true_return
            out.append(0.5 if abs(diff) <= self.tolerance else float(diff > 0))
        return out

