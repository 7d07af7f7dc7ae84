"""Gymnasium wrappers of the environment suite. They know nothing of preferences."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

__all__ = ["FixedHorizon"]


class FixedHorizon(gym.Wrapper):
    """Hide termination: every episode lasts exactly ``horizon`` steps.

    When the wrapped env terminates (the pole falls, the car reaches the flag), the episode does not
    end for the agent. It stays in the terminal observation (an absorbing state) until the horizon,
    with a true reward of ``absorb_reward`` (0 by default) for each absorbed step. With 0 the
    fixed-horizon true return equals the original episode's return, so scores stay comparable with
    the plain env and with rl-zoo.

    Why: a variable episode length leaks the reward. If episodes end when the pole falls, any
    positive learned reward teaches "survive", whatever the reward model learned (Christiano et al.
    2017 removed episode ends for this reason; imitation refuses such episodes outright). With a fixed
    horizon, the learned reward alone has to tell the agent that the absorbing state is bad.

    ``info["absorbed"]`` is True on absorbed steps, for logging; the agent does not see it.

    Example:
        >>> env = FixedHorizon(gym.make("CartPole-v1"), horizon=500)
        >>> obs, info = env.reset(seed=0)
    """

    def __init__(self, env: gym.Env, horizon: int, absorb_reward: float = 0.0):
        super().__init__(env)
        if horizon < 1:
            raise ValueError(f"FixedHorizon: horizon must be at least 1, got {horizon}")
        self.horizon = int(horizon)
        self.absorb_reward = float(absorb_reward)
        self._t = 0
        self._absorbed_obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._t = 0
        self._absorbed_obs = None
        return self.env.reset(seed=seed, options=options)

    def step(self, action) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._t += 1
        if self._absorbed_obs is not None:
            return self._absorbed_obs, self.absorb_reward, False, self._t >= self.horizon, {"absorbed": True}
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            self._absorbed_obs = obs
        return obs, reward, False, bool(truncated) or self._t >= self.horizon, info
