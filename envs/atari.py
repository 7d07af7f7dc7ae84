"""Atari games through ale-py, preprocessed as in Mnih et al. 2015 and with the score hidden.

The agent and the reward model see 4 stacked 84×84 grayscale frames (no-op starts, frame skip 4 with
max-pooling over the last two frames). The score area is blanked in those frames and in the RGB
frames people label, as in Christiano et al. 2017, who also blanked BeamRider's enemy counter and
Enduro's speedometer. The true game score still flows through the reward (and a ``Monitor`` placed
on the raw game, see :func:`make_atari`), so it can be compared with the learned reward.

Masks are rectangles ``(top, bottom, left, right)`` in the raw 210×160 screen, bottom and right
exclusive. Games without a hand-made mask get :data:`DEFAULT_SCORE_MASK`, the top band where most
Atari games draw their score; pass ``score_mask=`` to give your own (an empty tuple masks nothing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from .wrappers import FixedHorizon

__all__ = ["ATARI_GAMES", "SCORE_MASKS", "DEFAULT_SCORE_MASK", "ScoreMask", "mask_frame", "make_atari"]

Rect = tuple[int, int, int, int]
RAW_SHAPE = (210, 160)

# The paper's seven games: short name -> ALE game name.
ATARI_GAMES = {
    "pong": "Pong",
    "breakout": "Breakout",
    "enduro": "Enduro",
    "beamrider": "BeamRider",
    "qbert": "Qbert",
    "seaquest": "Seaquest",
    "spaceinvaders": "SpaceInvaders",
}

# Read off rendered frames of ale-py 0.12 (v5 envs).
SCORE_MASKS: dict[str, tuple[Rect, ...]] = {
    "Pong": ((0, 24, 0, 160),),  # both scores, above the court's top wall
    "Breakout": ((0, 16, 0, 160),),  # score, lives and player number, above the grey wall
    "Enduro": ((160, 192, 47, 112),),  # the odometer/score and cars-left panel, speedometer included
    "BeamRider": ((0, 42, 0, 160),),  # score, sector and the enemy counter
    "Qbert": ((0, 15, 0, 160),),  # score
    "Seaquest": ((0, 19, 0, 160),),  # score
    "SpaceInvaders": ((0, 20, 0, 160),),  # both players' scores
    # The score is under the maze (rows 187-193); the default top band would hide the maze's top
    # corridor and its pellets instead, and leave the score in view.
    "MsPacman": ((185, 196, 0, 160),),
    # Dense-score games outside the paper's seven; their scores sit low, where the default band would
    # leave them in view and hide the top of the play field instead (Atlantis's attackers fly there).
    "Atlantis": ((187, 200, 0, 160),),  # the score on the dark ground band (rows 188-197)
    "Asterix": ((182, 193, 0, 160),),  # the score under the bottom lane (rows 184-190)
    # Two more whose scores reach past the default band: CrazyClimber's lives (rows 13-18), bonus
    # timer (21-27) and score (31-37) sit above the building (from row 42); ChopperCommand's score
    # runs to row 22.
    "CrazyClimber": ((0, 40, 0, 160),),
    "ChopperCommand": ((0, 24, 0, 160),),
}
DEFAULT_SCORE_MASK: tuple[Rect, ...] = ((0, 21, 0, 160),)

# One agent step is 4 frames; ALE's v5 envs end an episode after 108,000 frames.
ATARI_HORIZON = 27_000


def _scaled(rects: Sequence[Rect], height: int, width: int) -> list[Rect]:
    """Raw-screen rectangles mapped onto an H×W frame, rounded outward so nothing of the score leaks."""
    sy, sx = height / RAW_SHAPE[0], width / RAW_SHAPE[1]
    return [(math.floor(t * sy), math.ceil(b * sy), math.floor(left * sx), math.ceil(r * sx)) for t, b, left, r in rects]


def mask_frame(frame: np.ndarray, rects: Sequence[Rect], fill: int = 0) -> np.ndarray:
    """A copy of ``frame`` (H×W or H×W×C, any size) with the raw-screen rectangles set to ``fill``."""
    out = frame.copy()
    for t, b, left, r in _scaled(rects, frame.shape[0], frame.shape[1]):
        out[t:b, left:r] = fill
    return out


class ScoreMask(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Blank the score area of image observations, and of ``render()`` frames for people.

    Args:
        env: an env whose observations are H×W or H×W×C images of the raw screen, at any size.
        rects: rectangles ``(top, bottom, left, right)`` in raw 210×160 screen pixels.
        fill: the value written over them.
    """

    def __init__(self, env: gym.Env, rects: Sequence[Rect], fill: int = 0):
        gym.utils.RecordConstructorArgs.__init__(self, rects=tuple(rects), fill=fill)
        super().__init__(env)
        for rect in rects:
            t, b, left, r = rect
            if not (0 <= t < b <= RAW_SHAPE[0] and 0 <= left < r <= RAW_SHAPE[1]):
                raise ValueError(f"ScoreMask: {rect} is not a (top, bottom, left, right) rectangle inside the "
                                 f"{RAW_SHAPE[0]}x{RAW_SHAPE[1]} screen")
        if len(env.observation_space.shape) not in (2, 3):
            raise ValueError(f"ScoreMask: observations must be images, got shape {env.observation_space.shape}")
        self.rects = tuple(rects)
        self.fill = fill

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return mask_frame(observation, self.rects, self.fill)

    def render(self):
        frame = self.env.render()
        return mask_frame(frame, self.rects, self.fill) if isinstance(frame, np.ndarray) else frame


def make_atari(
    game: str,
    *,
    fixed_horizon: bool = True,
    score_mask: Sequence[Rect] | None = None,
    terminal_on_life_loss: bool = False,
    render_mode: str | None = None,
    inner_wrapper: Callable[[gym.Env], gym.Env] | None = None,
    frame_stack: int = 4,
    repeat_action_probability: float = 0.0,
) -> gym.Env:
    """Build an ALE game as the agent sees it.

    Args:
        game: the ALE game name (``Pong``) or an id such as ``ALE/Pong-v5``.
        fixed_horizon: hide game over from the agent: the game resets and play continues, one
            continuous episode of ``ATARI_HORIZON`` steps, as in the paper (which let the agent learn
            a penalty instead). False gives plain episodes that end at game over.
        score_mask: rectangles to blank; None takes the game's hand-made mask or the default band.
        terminal_on_life_loss: end the episode on a life lost (off in the preference setting: it
            would tell the agent something the score keeps to itself).
        render_mode: ``"rgb_array"`` for frames people label (masked too).
        inner_wrapper: applied to the raw game before preprocessing: a ``Monitor`` there records the
            true game score per game.
        frame_stack: frames stacked into one observation.
        repeat_action_probability: sticky actions; 0 as in the paper and rl-zoo's NoFrameskip games.
    """
    import ale_py

    gym.register_envs(ale_py)
    name = game.removeprefix("ALE/").split("-")[0]
    env = gym.make(f"ALE/{name}-v5", frameskip=1, repeat_action_probability=repeat_action_probability,
                   render_mode=render_mode)
    if inner_wrapper is not None:
        env = inner_wrapper(env)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84,
                                          terminal_on_life_loss=terminal_on_life_loss)
    env = ScoreMask(env, SCORE_MASKS.get(name, DEFAULT_SCORE_MASK) if score_mask is None else score_mask)
    env = gym.wrappers.FrameStackObservation(env, frame_stack)
    if fixed_horizon:
        env = FixedHorizon(env, ATARI_HORIZON, on_termination="reset")
    return env
