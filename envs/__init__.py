"""The prefrl environment suite (installed as ``prefrl.envs``).

Short names for the classic-control tasks and the paper's seven Atari games, any gymnasium or
``ALE/<Game>-v5`` id, and for each a fixed-horizon variant in which termination is hidden from the
agent (see :class:`FixedHorizon`). Atari games are preprocessed and have their score masked (see
:mod:`prefrl.envs.atari`). Nothing here knows about preferences.

Example:
    >>> from prefrl.envs import make_env
    >>> env = make_env("cartpole", fixed_horizon=True)
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from ..errors import PrefrlError
from .atari import ATARI_GAMES, ATARI_HORIZON, make_atari
from .wrappers import FixedHorizon

__all__ = ["SUITE", "ATARI_SUITE", "EnvSpec", "make_atari", "FixedHorizon", "UnknownEnvError", "resolve", "make_env",
           "registration", "register_recorded", "action_space", "frames_for_people", "renders_rgb"]


class UnknownEnvError(PrefrlError, ValueError):
    """The name is neither a short name of the suite nor a registered gymnasium id."""


@dataclass(frozen=True)
class EnvSpec:
    """One entry of the suite.

    Attributes:
        name: the short name users type (``cartpole``).
        gym_id: the gymnasium id it builds (``CartPole-v1``).
        horizon: episode length of the fixed-horizon variant; the gymnasium time limit.
        terminates: whether the plain env can end an episode early (and so leak the reward).
        on_termination: what the fixed-horizon variant does then (see :class:`FixedHorizon`).
        termination_reward: true reward added on the step the plain env terminates, in the variant.
        atari: an ALE game, built by :func:`make_atari` (preprocessed, score masked).
    """

    name: str
    gym_id: str
    horizon: int
    terminates: bool
    on_termination: str = "absorb"
    termination_reward: float = 0.0
    atari: bool = False


SUITE: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in (
        # A fall resets the pole and costs 50: about what ending the episode costs a γ = 0.98 agent
        # (1 / (1 − γ) steps of +1). Absorbing instead left rl-zoo's PPO at a return of 9 after 150k
        # steps: 95% of a random policy's steps sat in the absorbing state, where actions do nothing.
        EnvSpec("cartpole", "CartPole-v1", 500, True, "reset", -50.0),
        EnvSpec("acrobot", "Acrobot-v1", 500, True),
        EnvSpec("mountaincar", "MountainCar-v0", 200, True),
        EnvSpec("pendulum", "Pendulum-v1", 200, False),
    )
}


def _atari_spec(name: str, game: str) -> EnvSpec:
    return EnvSpec(name, f"ALE/{game}-v5", ATARI_HORIZON, True, "reset", atari=True)


# The paper's seven Atari games (Christiano et al. 2017, §3.1.2).
ATARI_SUITE: dict[str, EnvSpec] = {name: _atari_spec(name, game) for name, game in ATARI_GAMES.items()}


def resolve(name: str) -> EnvSpec:
    """Turn a short name or a gymnasium id into an :class:`EnvSpec`.

    Raises:
        UnknownEnvError: with the name and the names that would work.
    """
    known = {**SUITE, **ATARI_SUITE}
    if name in known:
        return known[name]
    for spec in known.values():
        if spec.gym_id == name:
            return spec
    if name.startswith("ALE/"):
        import ale_py

        gym.register_envs(ale_py)
        if name in gym.registry:
            return _atari_spec(name, name.removeprefix("ALE/").split("-")[0])
    if ":" in name:  # gymnasium's "module:EnvId": import the module that registers the id
        module, _, env_id = name.partition(":")
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise UnknownEnvError(f"env {name!r}: cannot import {module!r} ({type(exc).__name__}: {exc}): install it "
                                  "or put it on PYTHONPATH") from None
        if env_id not in gym.registry:
            raise UnknownEnvError(f"env {name!r}: importing {module!r} registered no env {env_id!r}")
        return _generic_spec(name)
    if name in gym.registry:
        return _generic_spec(name)
    raise UnknownEnvError(
        f"unknown env {name!r}: use one of {', '.join(known)} (see `prefrl envs`), an ALE/<Game>-v5 id "
        "or a registered gymnasium id"
    )


@functools.lru_cache(maxsize=None)
def _generic_spec(name: str) -> EnvSpec:
    """A registered gymnasium id outside the suite, made once to check what it gives: the agent and
    the reward model take Box (arrays, images) or Discrete observations and Box or Discrete actions."""
    try:
        env = gym.make(name)
    except Exception as exc:  # a missing extra (mujoco, box2d), a bad entry point: any failure of gym.make
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UnknownEnvError(f"cannot make env {name!r} ({type(exc).__name__}: {first}): install what it needs "
                              "or choose another env") from None
    try:
        spaces = {"observations": (env.observation_space, (gym.spaces.Box, gym.spaces.Discrete)),
                  "actions": (env.action_space, (gym.spaces.Box, gym.spaces.Discrete))}
        for what, (space, allowed) in spaces.items():
            if not isinstance(space, allowed):
                raise PrefrlError(
                    f"env {name!r} has {type(space).__name__} {what} ({space}): prefrl trains on Box or Discrete "
                    f"{what}; wrap the env (e.g. gymnasium.wrappers.FlattenObservation) and register the wrapped id")
    finally:
        env.close()
    horizon = gym.registry[name.partition(":")[2] or name].max_episode_steps or 1000
    return EnvSpec(name, name, horizon, True)


def registration(name: str) -> dict | None:
    """What a run records to build a registered gymnasium id outside the suite in a later process
    (``prefrl compare``, ``label``, ``--resume``), where the module that registered it may not have
    been imported: the id's entry point as ``module:attr``, its time limit and keyword arguments.
    None for suite envs, ``module:EnvId`` names (which import their module themselves) and entry
    points that cannot be named so."""
    if name in SUITE or name in ATARI_SUITE or name.startswith("ALE/") or ":" in name or name not in gym.registry:
        return None
    spec = gym.registry[name]
    entry = spec.entry_point
    if callable(entry):
        entry = f"{entry.__module__}:{entry.__qualname__}"
    if not isinstance(entry, str) or "<" in entry:
        return None
    return {"id": name, "entry_point": entry, "max_episode_steps": spec.max_episode_steps,
            "kwargs": dict(spec.kwargs)}


def register_recorded(record: dict | None) -> None:
    """Register an id from :func:`registration`'s record, unless something has registered it already."""
    if record and record.get("id") and record["id"] not in gym.registry:
        gym.register(record["id"], entry_point=record["entry_point"],
                     max_episode_steps=record.get("max_episode_steps"), kwargs=record.get("kwargs") or {})


def make_env(name: str, *, fixed_horizon: bool = True, render_mode: str | None = None,
             inner_wrapper: Callable[[gym.Env], gym.Env] | None = None) -> gym.Env:
    """Build one env of the suite.

    Args:
        name: short name or gymnasium id.
        fixed_horizon: hide termination behind an absorbing state until the horizon (the honest
            default for learning from preferences); False gives the plain gymnasium env, which is
            what true returns are evaluated on.
        render_mode: passed to ``gym.make`` (``"rgb_array"`` to record frames for people).
        inner_wrapper: applied to the plain env, inside the fixed-horizon wrapper: a ``Monitor``
            there records the game's own episodes and true returns.
    """
    spec = resolve(name)
    if spec.atari:
        return make_atari(spec.gym_id, fixed_horizon=fixed_horizon, render_mode=render_mode,
                          inner_wrapper=inner_wrapper)
    env = gym.make(spec.gym_id, render_mode=render_mode)
    if inner_wrapper is not None:
        env = inner_wrapper(env)
    if fixed_horizon and spec.terminates:
        env = FixedHorizon(env, spec.horizon, spec.on_termination, spec.termination_reward)
    return env


@functools.lru_cache(maxsize=None)
def action_space(name: str) -> gym.spaces.Space:
    """The action space of an env of the suite or a gymnasium id (the env made once, then closed)."""
    env = make_env(name, fixed_horizon=False)
    try:
        return env.action_space
    finally:
        env.close()


def frames_for_people(spec: EnvSpec) -> bool:
    """Whether people labeling this env's clips need its frames recorded: the labeling window draws
    the suite's classic-control clips from their stored states; an Atari game's and any other env's
    (a user's own) from RGB frames recorded as the agent plays."""
    return spec.atari or spec.name not in SUITE


@functools.lru_cache(maxsize=None)
def renders_rgb(name: str) -> str | None:
    """None if the env renders RGB frames in ``rgb_array`` mode; else what it renders instead."""
    env = make_env(name, fixed_horizon=False, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        frame = env.render()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        env.close()
    if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3:
        return None
    return f"{type(frame).__name__} {getattr(frame, 'shape', '')}".strip()
