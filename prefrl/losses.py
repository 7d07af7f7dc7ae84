"""The loss core: one tested set of preference formulas for clips and for language models.

Tensors in, a scalar mean loss out. This module imports torch only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["bradley_terry_loss", "preference_probability", "plackett_luce_loss", "pairwise_ranking_loss"]


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


def plackett_luce_loss(scores: torch.Tensor, ranking: torch.Tensor | None = None, *, noise: float = 0.0) -> torch.Tensor:
    """Negative log-likelihood of rankings under the Plackett–Luce model, mean over the batch.

    With π = ranking[b] (indices into scores[b], best first) and s = scores[b]:

        log PL(π) = Σ_{i=1}^{K−1} [ s_{π_i} − log Σ_{j≥i} exp(s_{π_j}) ]
        loss = −mean log P,  P = (1 − noise)·PL(π) + noise/K!

    ``noise`` is the random-response probability (the labeler answers with a uniformly random
    ranking), as in :func:`bradley_terry_loss`.

    Args:
        scores: (B, K) scores (e.g. learned clip returns) of the K items of each ranking.
        ranking: (B, K) long, each row a permutation of 0..K−1, best first; None: the items of
            ``scores`` are already in ranked order.
        noise: random-response probability in [0, 1).

    For K = 2 this is the Bradley–Terry loss of the first item over the second, noise included.
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    ordered = scores if ranking is None else torch.gather(scores, 1, ranking)
    # log Σ_{j≥i} exp: a reversed cumulative logsumexp
    tail = torch.logcumsumexp(ordered.flip(1), dim=1).flip(1)
    log_pl = (ordered - tail)[:, :-1].sum(1)
    if noise == 0.0:
        return -log_pl.mean()
    log_random = torch.full_like(log_pl, math.log(noise) - math.lgamma(ordered.shape[1] + 1))
    return -torch.logaddexp(math.log1p(-noise) + log_pl, log_random).mean()


def pairwise_ranking_loss(scores: torch.Tensor, ranking: torch.Tensor | None = None) -> torch.Tensor:
    """A K-wise ranking split into its C(K,2) pairs, each a Bradley–Terry loss of the better item over
    the worse, averaged with weight 1/C(K,2) per ranking (the InstructGPT-style pairwise form);
    mean over the batch. Shapes as :func:`plackett_luce_loss`; equal to it for K = 2."""
    ordered = scores if ranking is None else torch.gather(scores, 1, ranking)
    k = ordered.shape[1]
    i, j = torch.triu_indices(k, k, offset=1)
    return F.softplus(-(ordered[:, i] - ordered[:, j])).mean()
