"""Atari games stepped by ale-py's ``AtariVectorEnv`` (C++ threads, preprocessing built in), as an SB3
``VecEnv`` that matches :func:`prefrl.envs.make_atari` wrapped in SB3's ``DummyVecEnv``.

The same preprocessing (no-op starts, frame skip 4 with max-pooling, 84×84 grayscale, 4 stacked
frames, no fire reset, sticky actions off), the same score masks on every stacked frame, the true
(unclipped) game score as the reward, episode statistics per game in ``info["episode"]`` (what a
``Monitor`` on the raw game gives), and, with ``fixed_horizon``, the hidden game over: a game that
ends is reset and play goes on; the agent's episode ends only after ``ATARI_HORIZON`` steps, and play
then goes on from where it is (the C++ env cannot reset one env on demand), where the Python path
starts a new game. Needs ale-py ≥ 0.11; people's frames (``render``) need the Python path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from .atari import ATARI_HORIZON, DEFAULT_SCORE_MASK, SCORE_MASKS, Rect, _scaled

__all__ = ["AtariVecEnv", "vector_env_available"]


def vector_env_available() -> bool:
    """Whether this ale-py has ``AtariVectorEnv`` (0.11 and later)."""
    try:
        from ale_py.vector_env import AtariVectorEnv  # noqa: F401
    except ImportError:
        return False
    return True


def _rom(name: str) -> str:
    """``SpaceInvaders`` -> ``space_invaders``: the ROM name ``AtariVectorEnv`` takes."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class AtariVecEnv(VecEnv):
    """``n_envs`` copies of an ALE game in C++ threads.

    Args:
        game: the ALE game name (``Pong``) or an id such as ``ALE/Pong-v5``.
        n_envs: games played at once.
        fixed_horizon: hide game over (see the module docstring); False: an episode is a game.
        score_mask: rectangles of the raw screen to blank; None: the game's own mask (as ``make_atari``).
        num_threads: C++ threads stepping the games (0: one per core).
        frame_stack: frames stacked into one observation.
        repeat_action_probability: sticky actions (0, as the paper and ``make_atari``).
    """

    def __init__(self, game: str, n_envs: int, *, fixed_horizon: bool = True, score_mask: Sequence[Rect] | None = None,
                 num_threads: int = 0, frame_stack: int = 4, repeat_action_probability: float = 0.0):
        from ale_py.vector_env import AtariVectorEnv

        if n_envs < 1:
            raise ValueError(f"AtariVecEnv: n_envs must be at least 1, got {n_envs}")
        name = game.removeprefix("ALE/").split("-")[0]
        self._env = AtariVectorEnv(_rom(name), n_envs, num_threads=num_threads, autoreset_mode="SameStep",
                                   reward_clipping=False, use_fire_reset=False, episodic_life=False, noop_max=30,
                                   frameskip=4, maxpool=True, stack_num=frame_stack, img_height=84, img_width=84,
                                   grayscale=True, repeat_action_probability=repeat_action_probability,
                                   max_num_frames_per_episode=4 * ATARI_HORIZON)
        self.render_mode = None  # the C++ games draw nothing for people; said before SB3 asks (or it warns)
        super().__init__(n_envs, self._env.single_observation_space, self._env.single_action_space)
        self.game = name
        self.fixed_horizon = fixed_horizon
        self._mask = _scaled(SCORE_MASKS.get(name, DEFAULT_SCORE_MASK) if score_mask is None else score_mask, 84, 84)
        self._actions: np.ndarray | None = None
        self._t = np.zeros(n_envs, np.int64)  # steps into the agent's episode
        self._game_return = np.zeros(n_envs)
        self._game_length = np.zeros(n_envs, np.int64)
        self._start = time.time()

    def _masked(self, obs: np.ndarray) -> np.ndarray:
        for t, b, left, r in self._mask:
            obs[..., t:b, left:r] = 0
        return obs

    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        obs, _ = self._env.reset(seed=seed)
        self._reset_seeds()
        self._t[:] = 0
        self._game_return[:] = 0.0
        self._game_length[:] = 0
        return self._masked(np.array(obs))

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self._env.step(self._actions)
        obs = self._masked(np.array(obs))
        rewards = rewards.astype(np.float32)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self._t += 1
        self._game_return += rewards
        self._game_length += 1
        game_over = terminated | truncated
        for i in np.flatnonzero(game_over):  # what a Monitor on the raw game records
            infos[i]["episode"] = {"r": float(self._game_return[i]), "l": int(self._game_length[i]),
                                   "t": round(time.time() - self._start, 6)}
            self._game_return[i], self._game_length[i] = 0.0, 0
        if self.fixed_horizon:
            dones = self._t >= ATARI_HORIZON
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = True
            for i in np.flatnonzero(game_over & ~dones):
                infos[i]["reset"] = True
        else:
            dones = game_over
            final = info.get("final_obs")
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = self._masked(np.array(final[i]))
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        self._t[dones] = 0
        return obs, rewards, dones, infos

    def close(self) -> None:
        self._env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError("AtariVecEnv does not render: people label Atari clips through the Python path "
                                  "(prefrl.envs.make_atari)")

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        raise NotImplementedError(f"AtariVecEnv has no per-env methods ({method_name})")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
