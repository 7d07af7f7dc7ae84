"""State-novelty bonus for the early, uninformed phase of a preference run.

Where the true score is sparse (acrobot, mountaincar), early clips almost all tie, the reward model
learns nothing, and PPO has nothing to chase: it settles into some behaviour that never reaches the
goal, so no clip ever shows the teacher a success. PEBBLE (Lee et al. 2021) answers with unsupervised
exploration that maximizes state entropy; here that is a particle-based entropy estimate, the distance
of each state to its k-th nearest neighbour within the rollout, added to the learned reward with a
weight that decays to 0.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["knn_novelty"]


@torch.no_grad()
def knn_novelty(obs: np.ndarray, k: int = 5, max_reference: int = 4096, seed: int = 0) -> np.ndarray:
    """Novelty of each state: log(1 + distance to its k-th nearest neighbour), standardized.

    Args:
        obs: (N, ...) observations of one rollout; flattened and scaled per dimension by their std.
        k: which neighbour (PEBBLE uses k = 5).
        max_reference: neighbours are searched among at most this many states of the rollout, drawn
            at random, which bounds the cost at N × max_reference distances.
        seed: seeds that draw.

    Returns:
        (N,) float32 with mean 0 and std 1 (zeros if all states are alike).
    """
    x = torch.as_tensor(obs.reshape(len(obs), -1), dtype=torch.float32)
    x = x / x.std(0).clamp_min(1e-6)
    ref = x
    if len(x) > max_reference:
        idx = np.random.default_rng(seed).choice(len(x), max_reference, replace=False)
        ref = x[torch.as_tensor(idx)]
    k = min(k, len(ref) - 1)
    if k < 1:
        return np.zeros(len(obs), np.float32)
    # The nearest "neighbour" of a reference state is itself at distance 0: take the (k+1)-th.
    dist = torch.cdist(x, ref).kthvalue(k + 1, dim=1).values
    novelty = torch.log1p(dist)
    std = novelty.std()
    if not torch.isfinite(std) or std < 1e-8:
        return np.zeros(len(obs), np.float32)
    return ((novelty - novelty.mean()) / std).numpy().astype(np.float32)
