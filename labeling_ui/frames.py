"""What a person sees of a clip: RGB frames, from the clip's stored frames, its Atari observations
(the masked frames the agent saw), or the classic-control env rendered at each stored state."""

from __future__ import annotations

import numpy as np

from prefrl.clips import Clip, unpack_frames
from prefrl.errors import PrefrlError

__all__ = ["clip_frames", "frame_rate"]


def _set_state(env, name: str, obs: np.ndarray) -> None:
    """Put a classic-control env into the state an observation shows (for rendering only)."""
    u = env.unwrapped
    if name == "cartpole" or name == "mountaincar":
        u.state = np.array(obs, dtype=np.float64)
    elif name == "acrobot":
        c1, s1, c2, s2, d1, d2 = obs
        u.state = np.array([np.arctan2(s1, c1), np.arctan2(s2, c2), d1, d2])
    elif name == "pendulum":
        c, s, d = obs
        u.state = np.array([np.arctan2(s, c), d])
        u.last_u = None  # no torque arrow: the clip's action is not part of the state
    else:
        raise PrefrlError(f"the labeling window cannot draw clips of {name!r}: it draws the suite's classic-control "
                          "clips from their states and Atari clips from recorded frames, and a run of another env "
                          "records none; label it by `prefrl import` of answers given elsewhere")


def clip_frames(clip: Clip, env: str) -> np.ndarray:
    """(L, H, W, 3) uint8 frames of a clip.

    Stored frames win. Atari observations (L, 4, 84, 84) show their newest frame, score area
    blanked as the agent saw it. Classic-control clips (cartpole, acrobot, mountaincar, pendulum)
    are rendered by putting the env into each stored state.
    """
    if clip.frames is not None:
        return unpack_frames(clip.frames)
    obs = np.asarray(clip.obs)
    if obs.ndim == 4 and obs.dtype == np.uint8:  # stacked grayscale frames (Atari)
        newest = obs[:, -1]
        return np.repeat(newest[..., None], 3, axis=-1)
    from prefrl.envs import resolve

    name = resolve(env).name
    render_env = _render_env(name)
    frames = []
    for o in obs:
        _set_state(render_env, name, o)
        frames.append(render_env.render())
    return np.stack(frames).astype(np.uint8)


_RENDER_ENVS: dict = {}


def _render_env(name: str):
    """One ``rgb_array`` env per classic-control name, kept for the process's life and never closed.

    Why never closed: gymnasium's classic-control ``close()`` calls ``pygame.display.quit()`` and
    ``pygame.quit()``, which destroys the labeling window that is showing the clip (the window died
    after its first label). Rendering to an off-screen surface needs no display of its own.
    """
    from prefrl.envs import make_env

    if name not in _RENDER_ENVS:
        render_env = make_env(name, fixed_horizon=False, render_mode="rgb_array")
        render_env.reset(seed=0)
        _RENDER_ENVS[name] = render_env
    return _RENDER_ENVS[name]


def frame_rate(env: str) -> float:
    """Steps per second to play a clip at: the env's own ``render_fps``; Atari at 15 (60 Hz / skip 4)."""
    from prefrl.envs import make_env, resolve

    spec = resolve(env)
    if spec.atari:
        return 15.0
    probe = make_env(spec.name, fixed_horizon=False)
    try:
        return float(probe.metadata.get("render_fps", 30))
    finally:
        probe.close()
