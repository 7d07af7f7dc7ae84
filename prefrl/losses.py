"""The loss core: one tested set of preference formulas for clips and for language models.

Tensors in, a scalar mean loss out. This module imports torch only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["bradley_terry_loss", "preference_probability"]


def preference_probability(chosen: torch.Tensor, rejected: torch.Tensor, *, noise: float = 0.0) -> torch.Tensor:
    """P(chosen ≻ rejected) = (1 − noise)·σ(chosen − rejected) + noise/2.

    ``noise`` is the random-response probability: the chance the labeler answers at random
    (Christiano et al. 2017, §2.2.3, use 0.1). Shapes: (B,) and (B,) give (B,).
    """
    return (1.0 - noise) * torch.sigmoid(chosen - rejected) + noise / 2.0


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    *,
    noise: float = 0.0,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bradley–Terry cross-entropy, mean over the batch.

    With P = (1 − noise)·σ(chosen − rejected) + noise/2 and a target y (the probability that
    "chosen" is really preferred; 1 if omitted, 0.5 for a tie):

        loss = −mean(y·log P + (1 − y)·log(1 − P))

    Args:
        chosen: (B,) rewards (for clips: summed learned rewards) of the first item of each pair.
        rejected: (B,) rewards of the second item.
        noise: random-response probability in [0, 1).
        target: optional (B,) soft targets in [0, 1].
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    diff = chosen - rejected
    if target is None:
        target = torch.ones_like(diff)
    if noise == 0.0:
        return F.binary_cross_entropy_with_logits(diff, target)
    # log P and log(1 − P) written through logsigmoid so large |diff| stays finite.
    log_random = torch.full_like(diff, math.log(noise / 2.0))
    log_p = torch.logaddexp(math.log1p(-noise) + F.logsigmoid(diff), log_random)
    log_q = torch.logaddexp(math.log1p(-noise) + F.logsigmoid(-diff), log_random)
    return -(target * log_p + (1.0 - target) * log_q).mean()
