"""Builders for one run: the envs, the learned reward, the preference loop's stages, and the labels
asked before RL. :func:`prefrl.training.train` calls them in order."""

from __future__ import annotations

import copy
import ctypes
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from .clips import Clip, ClipRecorder
from .config import TrainConfig
from .diagnostics import RefitCheck
from .envs import EnvSpec, make_env
from .envs.atari_vector import AtariVecEnv
from .errors import PrefrlError
from .feedback import Feedback, HumanFeedback, SyntheticFeedback
from .fitting import AsyncFitter, Fitter
from .labeled_data import LabeledData
from .learned_reward import LearnedRewardVecEnv
from .loop import PreferenceCallback
from .presets import Preset
from .progress import progress
from .queries import Querier, query_kind
from .reward_fn import LearnedReward
from .reward_training import EnsembleTrainer
from .run_dir import RunDir
from .schedule import LabelSchedule
from .store import PreferenceStore
from .teachers import make_teacher

__all__ = ["make_venv", "make_reward", "Stages", "make_stages", "pretrain", "resume_reward", "make_callback",
           "label_batch", "MIN_ROUNDS"]

MIN_ROUNDS = 5


def make_venv(spec: EnvSpec, n_envs: int, fixed_horizon: bool, seed: int, frames: bool = False,
              vector: bool = False, threads: int = 0) -> VecEnv:
    """``n_envs`` envs, seeded; a Monitor on the plain env, inside the fixed-horizon wrapper, logs the
    game's own episodes. ``frames``: render RGB frames (for people labeling Atari clips). ``vector``:
    an Atari game in ale-py's C++ vector env (:class:`prefrl.envs.atari_vector.AtariVecEnv`), unless
    frames are wanted, stepped by ``threads`` C++ threads (0: one per core)."""
    if vector and spec.atari and not frames:
        venv = AtariVecEnv(spec.gym_id, n_envs, fixed_horizon=fixed_horizon, num_threads=threads)
        venv.seed(seed)
        venv.action_space.seed(seed)
        return venv
    venv = DummyVecEnv([lambda: make_env(spec.name, fixed_horizon=fixed_horizon, inner_wrapper=Monitor,
                                         render_mode="rgb_array" if frames else None) for _ in range(n_envs)])
    venv.seed(seed)
    venv.action_space.seed(seed)
    return venv


def make_reward(config: TrainConfig, preset: Preset, venv: LearnedRewardVecEnv, device: str) -> LearnedReward:
    """A fresh reward-model ensemble for the env, as the preset shapes it."""
    return LearnedReward.build(
        venv.observation_space, venv.action_space, arch=preset.reward_arch, use_action=preset.reward_uses_action,
        hidden=preset.reward_hidden, reward_std=preset.reward_std,
        dropout=preset.reward_dropout if config.reward_dropout is None else config.reward_dropout,
        pessimism=config.pessimism, device=device)


@dataclass
class Stages:
    """The preference loop's stages, built for one run."""

    reward: LearnedReward
    recorder: ClipRecorder
    querier: Querier
    feedback: Feedback
    data: LabeledData
    fitter: Fitter | AsyncFitter
    ask_in_worker: bool = False  # the fitter's worker picks and answers the queries during RL


def make_stages(config: TrainConfig, preset: Preset, run: RunDir, store: PreferenceStore, reward: LearnedReward,
                n_envs: int, online_labels: int) -> Stages:
    """The stages, wired: the querier reads the ensemble's member returns, the feedback fills the
    labeled data, the fitter trains on it (a copy of the live ensemble when it fits in the background).

    With ``fit_async`` and a synthetic teacher the worker also picks and answers the queries during
    RL: the querier and the teacher then write through a store connection of their own and pick
    with the worker's copy of the ensemble (the newest; the live one may be swapped under it)."""
    model = reward.model
    kind = query_kind(config.rank_size)
    space = reward.observation_space, reward.action_space
    data = LabeledData(kind, reward.features, store, reward.device, space[0].shape, space[1].shape)
    batch = label_batch(preset.label_batch, online_labels)
    in_worker = preset.fit_async and config.feedback == "synthetic"
    ask_store = store.reopen() if in_worker else store
    feedback = (SyntheticFeedback(make_teacher(config.teacher, config.seed), kind, ask_store, data, batch)
                if config.feedback == "synthetic" else HumanFeedback(store, data, batch))
    trainer = EnsembleTrainer(copy.deepcopy(model) if preset.fit_delay or preset.fit_async else model,
                              noise=preset.reward_noise,
                              epochs=preset.reward_epochs, target_accuracy=preset.reward_target_accuracy,
                              min_updates=preset.reward_updates,
                              refresh_feature_stats=preset.reward_feature_stats == "every",
                              warm_start=preset.reward_warm_start, batch_size=preset.reward_batch,
                              stats_sample=4096 if preset.reward_arch == "cnn" else 0, seed=config.seed,
                              augment_shift=preset.reward_augment)
    picks_with = LearnedReward(trainer.model, *space) if in_worker else reward
    return Stages(
        reward=reward,
        recorder=ClipRecorder(n_envs, preset.clip_length, capacity=max(100, preset.candidate_steps // preset.clip_length)),
        querier=Querier(kind, ask_store, config.query, picks_with.member_returns, config.seed, feedback.source),
        feedback=feedback,
        data=data,
        fitter=(AsyncFitter(trainer, model, data, save=run.save_reward_model,
                            yield_to_agent=preset.fit_yield and reward.device.type == "cpu",
                            new_only=preset.refit_new_labels, seed=config.seed)
                if preset.fit_async else
                Fitter(trainer, model, data, delay=preset.fit_delay, save=run.save_reward_model,
                       new_only=preset.refit_new_labels, seed=config.seed)),
        ask_in_worker=in_worker,
    )


def label_batch(preset_batch: int, online: int) -> int:
    """Fewest new labels asked (and, with people labeling, arrived) before a refit: the preset's
    batch, or less on a small budget, so that the ``online`` labels asked during RL come in at least
    ``MIN_ROUNDS`` rounds (with 15 online labels and a batch of 20, all of them would come in the
    last rollout and PPO would train the whole run on the initial ones)."""
    return max(1, min(preset_batch, math.ceil(online / MIN_ROUNDS)))


def first_fit_epochs(trainer: EnsembleTrainer) -> int:
    """Epochs of the first fit, from scratch: five times a warm-started refit's fixed count; with a
    target accuracy, the same cap as every fit (it stops when the target is reached)."""
    return trainer.epochs if trainer.target_accuracy is not None else 5 * trainer.epochs


def pretrain(stages: Stages, venv: DummyVecEnv, initial: int, random_steps: int, frames: bool = False,
             show: bool = False) -> None:
    """Ask the initial labels on clips of ``random_steps`` random-policy steps and fit the reward
    model before RL starts (Christiano et al. 2017, App. A); ``frames``: record frames for people;
    ``show``: a progress bar through these phases (on a terminal)."""
    random_env = LearnedRewardVecEnv(venv, record_frames=frames)
    random_env.reset()
    rounds = max(1, random_steps // venv.num_envs)
    with progress(rounds * venv.num_envs, "random-policy steps before RL", show) as bar:
        for _ in range(rounds):
            random_env.step(np.stack([random_env.action_space.sample() for _ in range(venv.num_envs)]))
            bar.update(venv.num_envs)
    record = random_env.drain()
    stages.recorder.add_steps(record.obs, record.actions, record.true_rewards, record.dones, 0, record.frames)
    random_env.close()
    queries = stages.querier(stages.recorder.clips, initial, strategy="random")
    if len(queries) < min(2, initial):
        raise PrefrlError(f"the random policy's clips gave {len(queries)} distinct queries of the {initial} asked "
                          "before RL: lower the clip length or --rank-size")
    stages.feedback(queries)
    stages.feedback.before_rl(len(queries))  # people label here, with the feedback's own messages
    with progress(1, f"the reward model's first fit, on {len(queries)} labels", show) as bar:
        stages.fitter.fit(epochs=first_fit_epochs(stages.fitter.trainer))
        bar.update()


def resume_reward(stages: Stages, run: RunDir) -> None:
    """A resumed run's reward model: the last saved ensemble, refit on every stored label (a run
    killed before its first fit is fitted from scratch)."""
    stages.data.sync()
    saved = run.has_reward_model
    if saved:  # warm start from the last refit
        state = run.reward_model(stages.reward.device).state_dict()
        stages.reward.model.load_state_dict(state)
        stages.fitter.trainer.model.load_state_dict(state)
        stages.fitter.trainer.keep_feature_stats()
    stages.fitter.fit(epochs=None if saved else first_fit_epochs(stages.fitter.trainer))


def greedy_probe(venv: DummyVecEnv, steps: int, clip_length: int) -> Callable[[BaseAlgorithm, int], list[Clip]]:
    """Clips of the deterministic policy: each call plays ``steps`` env steps of it from a reset
    (PPO's sampling policy can keep clear of a place its deterministic policy drifts to, and the
    deterministic one is what the run is scored on)."""
    recording = LearnedRewardVecEnv(venv)

    def probe(algo: BaseAlgorithm, timestep: int) -> list[Clip]:
        obs = recording.reset()
        for _ in range(max(1, steps // recording.num_envs)):
            obs = recording.step(algo.predict(obs, deterministic=True)[0])[0]
        record = recording.drain()
        recorder = ClipRecorder(recording.num_envs, clip_length, capacity=max(1, steps))
        recorder.add_steps(record.obs, record.actions, record.true_rewards, record.dones, timestep)
        return list(recorder.clips)

    return probe


def make_callback(stages: Stages, venv: LearnedRewardVecEnv, schedule: LabelSchedule, preset: Preset, steps: int,
                  device: str, probe_venv: DummyVecEnv | None, on_update, off_policy: bool = False) -> PreferenceCallback:
    """The SB3 callback that runs the stages at each rollout's end (for an off-policy learner, at each
    rollout's end the replay buffer's new rewards and every ``round_steps`` the rest)."""
    return PreferenceCallback(
        venv, reward=stages.reward, recorder=stages.recorder, querier=stages.querier, feedback=stages.feedback,
        data=stages.data, fitter=stages.fitter, schedule=schedule,
        explore_steps=int(preset.explore_fraction * steps),
        # On CPU the reward CNN scores each 16 steps of the rollout on the core the envs leave idle.
        overlap=16 if device == "cpu" and preset.reward_arch == "cnn" and not off_policy else 0,
        check=RefitCheck(preset.check_clips) if preset.check_clips else None,
        probe=greedy_probe(probe_venv, preset.greedy_steps, preset.clip_length) if probe_venv else None,
        ask_in_worker=stages.ask_in_worker, on_update=on_update, round_steps=preset.round_steps)


def set_threads(device: str, atari: bool) -> None:
    """Small MLPs on a CPU: one thread is faster and leaves the other core free."""
    if device == "cpu" and not atari:
        torch.set_num_threads(1)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory() -> bool:
    """Have glibc keep the memory torch frees for the next tensor, instead of handing it back to the
    system; returns whether it was set.

    By default glibc gives each allocation over 32 MB its own ``mmap`` and unmaps it when freed, so
    every training step of the Atari reward CNN (3 members x 800 frames: a 271 MB float batch and
    35 MB activations) faults in fresh zeroed pages, and a thread's own arena does so for smaller
    ones too. With ``mmap`` off, freed memory kept in the heap and every thread on the one main
    arena, a training step of that CNN ran 1.79x and its scoring of a rollout 1.67x faster on one
    thread, for a higher peak memory (1.41 GB against 1.13 GB in that step's process), because a
    freed block is reused only once its neighbours are free too
    (``experiments/benchmark_allocator.py``). The setting is process-wide, so it is made where a
    run starts (:func:`prefrl.training.train`), not on import. Left alone where it would not apply
    (not Linux with glibc) and where the user tunes malloc already (``GLIBC_TUNABLES`` names a
    ``glibc.malloc`` tunable, or a ``MALLOC_*`` variable is set): that is also the way to turn it off.
    """
    if not sys.platform.startswith("linux") or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries: no mallopt to call
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) and mallopt(_M_ARENA_MAX, 1))
