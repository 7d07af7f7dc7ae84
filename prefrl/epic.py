"""EPIC distance between two rewards (Gleave et al. 2020, "Quantifying Differences in Reward Functions").

Each reward is first canonicalized, which removes potential shaping:

    C(R)(s, a, s') = R(s, a, s') + E[γ R(s', A, S') − R(s, A, S') − γ R(S, A, S')],  S, S' ~ D_S, A ~ D_A

and the distance is the Pearson distance sqrt((1 − ρ)/2) of the canonical rewards over a coverage
distribution of transitions. It is 0 for a positively rescaled, potential-shaped copy of a reward
and at most 1. The expectations are Monte Carlo means over one shared sample of states and actions,
so shaping cancels exactly, not only in expectation.

The true reward must be a function of (s, a, s'), which the game score of an Atari game is not;
:data:`TRUE_REWARDS` gives it for the classic-control envs whose score is one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["RewardFunction", "canonicalize", "epic_distance", "TRUE_REWARDS"]

RewardFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(obs (N, ...), actions (N, ...), next_obs (N, ...)) -> rewards (N,)."""


def canonicalize(reward: RewardFunction, obs, actions, next_obs, states, sample_actions, gamma: float) -> np.ndarray:
    """C(R) at the transitions (obs, actions, next_obs), with the expectations over ``states`` (the
    sample of D_S, used for S and S') and ``sample_actions`` (the sample of D_A), both of size n."""
    n, m = len(obs), len(states)

    def mean_from(x: np.ndarray) -> np.ndarray:
        """E_{A,S'} R(x, A, S') for each row of x: (len(x),)."""
        xs = np.repeat(x, m, axis=0)
        acts = np.tile(sample_actions, (len(x),) + (1,) * (sample_actions.ndim - 1))
        nxt = np.tile(states, (len(x),) + (1,) * (states.ndim - 1))
        return reward(xs, acts, nxt).reshape(len(x), m).mean(1)

    base = reward(obs, actions, next_obs)
    mean_all = reward(states, sample_actions, np.roll(states, 1, axis=0)).mean()
    chunk = max(1, 200_000 // m)
    from_next = np.concatenate([mean_from(next_obs[i:i + chunk]) for i in range(0, n, chunk)])
    from_here = np.concatenate([mean_from(obs[i:i + chunk]) for i in range(0, n, chunk)])
    return base + gamma * from_next - from_here - gamma * mean_all


def epic_distance(reward_a: RewardFunction, reward_b: RewardFunction, obs, actions, next_obs, gamma: float = 0.99,
                  n_samples: int = 256, seed: int = 0) -> float:
    """EPIC distance of two rewards over the given transitions (the coverage distribution); D_S is a
    sample of their states, D_A of their actions."""
    obs, actions, next_obs = np.asarray(obs), np.asarray(actions), np.asarray(next_obs)
    rng = np.random.default_rng(seed)
    all_states = np.concatenate([obs, next_obs])
    states = all_states[rng.choice(len(all_states), n_samples, replace=len(all_states) < n_samples)]
    sample_actions = actions[rng.choice(len(actions), n_samples, replace=len(actions) < n_samples)]
    ca = canonicalize(reward_a, obs, actions, next_obs, states, sample_actions, gamma)
    cb = canonicalize(reward_b, obs, actions, next_obs, states, sample_actions, gamma)
    if ca.std() == 0 or cb.std() == 0:
        return float("nan")
    rho = float(np.corrcoef(ca, cb)[0, 1])
    return float(np.sqrt(max(0.0, (1.0 - rho) / 2.0)))


def _pendulum(obs, actions, next_obs):
    cos, sin, speed = obs[:, 0], obs[:, 1], obs[:, 2]
    torque = np.clip(np.asarray(actions, float).reshape(len(obs), -1)[:, 0], -2.0, 2.0)
    return -(np.arctan2(sin, cos) ** 2 + 0.1 * speed ** 2 + 0.001 * torque ** 2)


def _acrobot(obs, actions, next_obs):
    c1, s1, c2, s2 = next_obs[:, 0], next_obs[:, 1], next_obs[:, 2], next_obs[:, 3]
    height = -c1 - (c1 * c2 - s1 * s2)  # -cos(θ1) - cos(θ1 + θ2): the tip above the bar at > 1
    return np.where(height > 1.0, 0.0, -1.0)


def _mountaincar(obs, actions, next_obs):
    return np.where(next_obs[:, 0] >= 0.5, 0.0, -1.0)


TRUE_REWARDS: dict[str, RewardFunction] = {"pendulum": _pendulum, "acrobot": _acrobot, "mountaincar": _mountaincar}
"""The game score as a function of (s, a, s'), where the env's score is one (gymnasium's formulas)."""
