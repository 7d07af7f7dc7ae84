"""User-facing errors: the CLI prints them as one line and exits non-zero."""

__all__ = ["PrefrlError", "StoreError", "TrainingError"]


class PrefrlError(Exception):
    """Bad input from the user. The message names the value that was wrong and what to do."""


class StoreError(PrefrlError):
    """The preference store cannot be opened or used as asked."""


class TrainingError(PrefrlError):
    """Training cannot go on (the reward model diverged, or there is nothing to train on); the store
    is untouched."""
