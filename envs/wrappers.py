"""Gymnasium wrappers of the environment suite. They know nothing of preferences."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

__all__ = ["FixedHorizon"]

ON_TERMINATION = ("absorb", "reset")


class FixedHorizon(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Hide termination: every episode lasts exactly ``horizon`` steps.

    Why: a variable episode length leaks the reward. If episodes end when the pole falls, any
    positive learned reward teaches "survive", whatever the reward model learned (Christiano et al.
    2017 removed episode ends for this reason; imitation refuses such episodes outright). With a fixed
    horizon, the learned reward alone has to tell the agent what is good.

    When the wrapped env terminates, the agent's episode goes on, in one of two ways:

    - ``"absorb"``: it stays in the terminal observation (an absorbing state) until the horizon,
      with a true reward of 0 per absorbed step. The fixed-horizon true return then equals the plain
      episode's return. Right for goal-type ends (the car reaches the flag), which a random policy
      rarely reaches.
    - ``"reset"``: the wrapped env is reset and play continues, one continuous episode as in the
      paper's Atari setup. Right for failure-type ends (the pole falls): absorbing there would fill
      most early rollouts with a state where actions do nothing.

    ``termination_reward`` is added to the true reward of the step on which the wrapped env
    terminates (for example a penalty for a fall in ``"reset"`` mode, so that the true score, and a
    teacher reading it, still sees falls). ``info["absorbed"]`` marks absorbed steps and
    ``info["reset"]`` steps after which the wrapped env was reset; the agent sees neither.

    Example:
        >>> env = FixedHorizon(gym.make("CartPole-v1"), horizon=500, on_termination="reset",
        ...                    termination_reward=-50.0)
        >>> obs, info = env.reset(seed=0)
    """

    def __init__(self, env: gym.Env, horizon: int, on_termination: str = "absorb", termination_reward: float = 0.0):
        gym.utils.RecordConstructorArgs.__init__(self, horizon=horizon, on_termination=on_termination,
                                                 termination_reward=termination_reward)
        super().__init__(env)
        if horizon < 1:
            raise ValueError(f"FixedHorizon: horizon must be at least 1, got {horizon}")
        if on_termination not in ON_TERMINATION:
            raise ValueError(f"FixedHorizon: on_termination must be 'absorb' or 'reset', got {on_termination!r}")
        self.horizon = int(horizon)
        self.on_termination = on_termination
        self.termination_reward = float(termination_reward)
        self._t = 0
        self._absorbed_obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._t = 0
        self._absorbed_obs = None
        return self.env.reset(seed=seed, options=options)

    def step(self, action) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._t += 1
        end = self._t >= self.horizon
        if self._absorbed_obs is not None:
            return self._absorbed_obs, 0.0, False, end, {"absorbed": True}
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            reward = float(reward) + self.termination_reward
        if self.on_termination == "absorb":
            if terminated:
                self._absorbed_obs = obs
            return obs, reward, False, end or bool(truncated), info
        if (terminated or truncated) and not end:
            obs, _ = self.env.reset()
            info = {**info, "reset": True}
        return obs, reward, False, end, info
