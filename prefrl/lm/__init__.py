"""The language-model path: a tiny causal LM trained from preferences on the same loss core
(:mod:`prefrl.losses`) as the clip reward model. See :func:`prefrl.lm.run.run_lm`."""

from .run import METHODS, LMRun, run_lm

__all__ = ["METHODS", "LMRun", "run_lm"]
