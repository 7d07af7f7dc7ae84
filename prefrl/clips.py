"""Clips: fixed-length segments of one episode, cut from vectorized rollouts."""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["Clip", "ClipRecorder", "pack_frames", "unpack_frames"]


def pack_frames(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 frames -> (N,) object array, each frame zlib-compressed with its shape.

    Frames for people are recorded at every step of a human-feedback run but shown only for the
    few clips queried: kept packed, an Atari screen (210×160×3, 100 KB) takes a few KB.
    """
    out = np.empty(len(frames), dtype=object)
    for k, frame in enumerate(frames):
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        out[k] = np.array(frame.shape, np.int32).tobytes() + zlib.compress(frame.tobytes(), 1)
    return out


def unpack_frames(frames: np.ndarray) -> np.ndarray:
    """The (L, H, W, 3) uint8 array of frames, packed (see :func:`pack_frames`) or not."""
    frames = np.asarray(frames)
    if frames.dtype != object:
        return frames.astype(np.uint8, copy=False)
    return np.stack([np.frombuffer(zlib.decompress(b[12:]), np.uint8).reshape(np.frombuffer(b[:12], np.int32))
                     for b in frames])


@dataclass(frozen=True)
class Clip:
    """A segment of ``length`` consecutive steps of one episode.

    Attributes:
        obs: (L, *obs_shape) observations the agent saw before each action.
        actions: (L, *act_shape) actions the env executed (clipped to the action space).
        true_rewards: (L,) the hidden game score per step. Never shown to the learner; the
            synthetic teacher and the logs read it.
        frames: (L, H, W, 3) uint8 RGB frames for people to look at, or (L,) of them packed
            (:func:`pack_frames`; :func:`unpack_frames` reads either), or None.
        timestep: the training timestep at which the clip ended (0 for random-policy clips).
        clip_id: the store's id once saved, else None.
        member_returns: (M,) each reward-model member's unnormalized return of the clip, as the
            ensemble of version ``scored_by`` gave it when the clip was played (the learned reward
            of a rollout is computed anyway; query selection reads these instead of running the
            ensemble again while that version is in force), or None. Not stored.
        scored_by: the ensemble version (:attr:`prefrl.reward_model.RewardEnsemble.version`) of
            ``member_returns``; -1 for none.
    """

    obs: np.ndarray
    actions: np.ndarray
    true_rewards: np.ndarray
    frames: np.ndarray | None = None
    timestep: int = 0
    clip_id: int | None = None
    member_returns: np.ndarray | None = None
    scored_by: int = -1

    @property
    def length(self) -> int:
        return len(self.true_rewards)

    @property
    def true_return(self) -> float:
        return float(self.true_rewards.sum())


class ClipRecorder:
    """Cuts per-step vectorized data into clips, one env stream at a time.

    Steps arrive as arrays over the ``n_envs`` envs. Each env's current episode is buffered; every
    ``clip_length`` consecutive steps of one episode become a clip, and a partial tail is dropped when
    the episode ends. Only the ``capacity`` most recent clips are kept, so memory stays bounded.

    Args:
        n_envs: number of parallel envs.
        clip_length: steps per clip (the paper's Atari clips are 25 steps).
        capacity: how many recent clips to keep as query candidates.
    """

    def __init__(self, n_envs: int, clip_length: int, capacity: int = 2000):
        if clip_length < 1:
            raise ValueError(f"clip_length must be at least 1, got {clip_length}")
        self.n_envs = n_envs
        self.clip_length = clip_length
        self.clips: deque[Clip] = deque(maxlen=capacity)
        self._pending: list[list[tuple]] = [[] for _ in range(n_envs)]

    def add_steps(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        true_rewards: np.ndarray,
        dones: np.ndarray,
        timestep: int,
        frames: np.ndarray | None = None,
        member_rewards: np.ndarray | None = None,
        scored_by: int = -1,
    ) -> None:
        """Add T steps of all envs: arrays shaped (T, n_envs, ...); ``dones[t, i]`` ends env i's episode
        after step t. ``member_rewards`` (T, n_envs, M): each reward-model member's unnormalized
        output of each step, from the ensemble of version ``scored_by``; a clip cut wholly from
        steps of one version keeps their sums as its :attr:`Clip.member_returns`."""
        steps = len(true_rewards)
        if steps == 0:
            return
        for i in range(self.n_envs):
            ends = (np.flatnonzero(dones[:, i]) + 1).tolist()
            if not ends or ends[-1] != steps:
                ends.append(steps)
            start = 0
            for end in ends:
                part = slice(start, end)
                self._pending[i].append((obs[part, i], actions[part, i], true_rewards[part, i],
                                         None if frames is None else frames[part, i],
                                         None if member_rewards is None else member_rewards[part, i],
                                         np.full(end - start, scored_by if member_rewards is not None else -1)))
                self._cut(i, timestep)
                if dones[end - 1, i]:
                    self._pending[i] = []  # the episode ended; a tail shorter than a clip is dropped
                start = end

    def _cut(self, i: int, timestep: int) -> None:
        pending = self._pending[i]
        total = sum(len(part[2]) for part in pending)
        if total < self.clip_length:
            return
        obs, acts, rews, frames = (
            np.concatenate([p[k] for p in pending]) if pending[0][k] is not None else None for k in range(4)
        )
        scored = [p[4] for p in pending if p[4] is not None]
        members = None if not scored else np.concatenate(  # unscored steps as NaN (their version is -1)
            [p[4] if p[4] is not None else np.full((len(p[2]), scored[0].shape[1]), np.nan, np.float32)
             for p in pending])
        versions = np.concatenate([p[5] for p in pending])  # the ensemble version that scored each step
        n = total // self.clip_length
        L = self.clip_length
        for c in range(n):
            sl = slice(c * L, (c + 1) * L)
            # Member returns of one ensemble only: a clip across a refit, or unscored steps, keeps none.
            version = int(versions[sl][0]) if members is not None and (versions[sl] == versions[sl][0]).all() else -1
            self.clips.append(
                Clip(obs[sl].copy(), acts[sl].copy(), rews[sl].astype(np.float32),
                     None if frames is None else frames[sl].copy(), timestep,
                     member_returns=members[sl].sum(0) if version >= 0 else None, scored_by=version)
            )
        rest = slice(n * L, total)
        self._pending[i] = [(obs[rest], acts[rest], rews[rest], None if frames is None else frames[rest],
                             None if members is None else members[rest], versions[rest])]
