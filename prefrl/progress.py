"""Progress of the phases that take a few seconds or more (the labels asked before RL, the final
evaluation, ``compare``'s rollouts, the language-model path's stages), drawn as SB3 draws its own
bar (``tqdm.rich``), on stderr and on a terminal only: piped or captured output stays as it was,
so an error is still the one line on stderr."""

from __future__ import annotations

import sys
import warnings

__all__ = ["progress"]


class _Silent:
    """A bar that draws nothing (not on a terminal, or progress turned off)."""

    def update(self, n: float = 1) -> None:
        pass

    def set_description(self, description: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: float | None, description: str, enabled: bool = True):
    """A progress bar of ``total`` steps (None: a counter), used as a context manager; silent unless
    ``enabled`` and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return _Silent()
    from tqdm import TqdmExperimentalWarning
    from tqdm.rich import tqdm

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)
        return tqdm(total=total, desc=description, file=sys.stderr)
