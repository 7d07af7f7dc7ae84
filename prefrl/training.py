"""``prefrl train``: one run of preference-based (or true-reward) PPO, from config to summary.

:func:`train` reads top to bottom, as the algorithm runs: settings, the run directory, the envs,
the learned reward and the preference loop's stages, the labels asked before RL, ``learn``,
evaluation, the summary.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import set_random_seed

from .algos import OFF_POLICY, algo_class, build_kwargs
from .build import (keep_freed_memory, make_callback, make_reward, make_stages, make_venv, pretrain, resume_reward,
                    set_threads)
from .config import TrainConfig
from .envs import EnvSpec, frames_for_people, make_env, registration, resolve
from .errors import PrefrlError
from .learned_reward import LearnedRewardVecEnv
from .metrics import EachRollout, MetricsLog
from .presets import Preset
from .progress import progress
from .run_dir import RunDir, set_parameters
from .schedule import LabelSchedule
from .stores import open_store

__all__ = ["train", "resume"]


def train(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run one training job and return its summary (also written to ``summary.json``); with
    ``resume``, continue the killed run in ``config.run_dir`` (see :func:`resume`).

    Example:
        >>> summary = prefrl.train(prefrl.TrainConfig("cartpole", labels=200, seed=0))
        >>> summary["true_return_mean"]
    """
    config.validate()
    start = time.time()
    spec, preset = resolve(config.env), config.preset()
    labels, steps = config.labels or preset.labels, config.steps or preset.timesteps_for(config.algo)
    device = config.resolved_device()
    learned = config.reward == "learned"

    if config.store and not resume:  # a new run starts on an empty store, as it does on a new directory
        with open_store(config.store, env=spec.name) as shared:
            if shared.num_clips():
                raise PrefrlError(f"--store {shared.path} already holds {shared.num_clips()} clips of another run: give "
                                  "an empty database (or schema) for a new run, or --resume the run that made them")
    # The run directory, held by this process until the run ends; one that holds a run is refused.
    with RunDir.create(config.run_dir, f"{spec.name}-{config.reward}-s{config.seed}", resume=resume) as run:
        if not resume:  # first, so that a run killed from here on can be resumed
            run.write_config(_config_record(config, spec, preset, labels, steps, device))
        store = run.store(spec.name, create=not resume) if learned else None
        checkpoint, done_steps = run.latest_checkpoint() if resume else (None, 0)

        # Envs. People label Atari clips on the game's own screen in colour (score masked), and a user's
        # own env's clips as it renders them, recorded at every step and kept packed; the suite's
        # classic-control clips are drawn from their stored states instead.
        set_random_seed(config.seed)
        n_envs, algo_kwargs = preset.algo(config.algo)
        set_threads(device, spec.atari)
        kept_freed_memory = keep_freed_memory()
        frames = config.feedback == "human" and learned and frames_for_people(spec)

        def envs(seed_offset: int, render: bool = False):
            return make_venv(spec, n_envs, config.fixed_horizon, config.seed + seed_offset, render, preset.vector_env,
                             preset.vector_threads)

        venv = envs(0, frames)
        # A row per update, or per round_steps env steps for off-policy learners (an update every step or
        # few) and per 1000 for A2C (one every 80 steps).
        every = preset.round_steps if config.algo in OFF_POLICY else 1000 if config.algo == "a2c" else 0
        metrics = MetricsLog(run.metrics_path, start, every=every, append=resume,
                             learned=learned, resumed_from=done_steps if resume else None)

        # The learned reward and the loop's stages; the initial labels and the first fit before RL.
        stages = probe_venv = None
        pretrain_seconds = 0.0
        if learned:
            venv = LearnedRewardVecEnv(venv, record_frames=frames)
            reward = make_reward(config, preset, venv, device)
            initial = config.initial_labels or min(labels, max(2, round(preset.initial_fraction * labels)))
            stages = make_stages(config, preset, run, store, reward, n_envs, labels - initial)
            pretrain_start = time.time()
            if resume and store.num_labels() >= 2:
                resume_reward(stages, run)
            else:
                pretrain(stages, envs(1, frames), initial, preset.random_steps or 10 * initial * preset.clip_length,
                         frames=frames, show=config.progress_bar)
            pretrain_seconds = time.time() - pretrain_start
            schedule = LabelSchedule(labels, initial, steps, preset.t0_fraction * steps,
                                     labels_until=max(1, round(preset.labels_until * steps)))
            probe_venv = envs(2) if preset.greedy_steps else None
            callback = make_callback(
                stages, venv, schedule, preset, steps, device, probe_venv,
                on_update=lambda cb: metrics.row(cb.model, stages.data.n, cb.learned_episode_returns,
                                                 stages.fitter.last_stats, cb.rollout),
                off_policy=config.algo in OFF_POLICY)
        else:
            callback = EachRollout(metrics.row)
        # Policy checkpoints over the run (five by default), for comparing learned and true reward along the way.
        checkpoints = Checkpoints(max(1, steps // (preset.checkpoints * n_envs)), run)

        callbacks = [callback, checkpoints]
        if preset.rollout_threads and device == "cpu":  # first: the loop's end-of-rollout work gets every thread
            callbacks.insert(0, RolloutThreads(preset.rollout_threads))
        if config.max_minutes is not None:
            callbacks.append(Deadline(start + 60 * config.max_minutes))

        # RL.
        agent = algo_class(config.algo)("CnnPolicy" if spec.atari else "MlpPolicy", venv, seed=config.seed,
                                        device=device, verbose=0, tensorboard_log=str(run.tensorboard_dir),
                                        **build_kwargs(config.algo, {**algo_kwargs, **config.hyperparams},
                                                       venv.action_space))
        resumed_from = 0
        if checkpoint is not None:
            set_parameters(agent, checkpoint, device)
            agent.num_timesteps = resumed_from = done_steps
        learn_start, learn_cpu = time.time(), time.process_time()
        worker_cpu = _worker_cpu(stages)
        agent.learn(max(0, steps - resumed_from), callback=callbacks, progress_bar=config.progress_bar,
                    tb_log_name=config.algo, reset_num_timesteps=not resume)
        learn_seconds = time.time() - learn_start
        cpu_seconds = _cpu_seconds(time.process_time() - learn_cpu, stages, callback if learned else None, worker_cpu)
        final_fit_start = time.time()
        if stages is not None:
            stages.fitter.close()  # every label is in the saved ensemble
        final_fit_seconds = time.time() - final_fit_start
        # Counted here, beside the final fit, not after the evaluation below: a person's (or a
        # script's) answer landing during the evaluation is in the store for a resume, but not in
        # the saved ensemble that rm_labels describes.
        labels_used = store.num_labels() if store is not None else 0
        metrics.close()
        if probe_venv is not None:
            probe_venv.close()
        run.save_policy(agent)

        # Evaluation on the plain env (termination visible, as the game scores it).
        eval_env = Monitor(make_env(spec.name, fixed_horizon=False))
        eval_env.reset(seed=config.seed + 10_000)
        with progress(preset.eval_episodes, "evaluating the final policy (episodes)", config.progress_bar) as bar:
            def count(local, _):  # evaluate_policy's per-step hook: advance by the episodes finished
                done = int(sum(local["episode_counts"]))
                bar.update(done - count.done)
                count.done = done
            count.done = 0
            returns, _ = evaluate_policy(agent, eval_env, n_eval_episodes=preset.eval_episodes, deterministic=True,
                                         return_episode_rewards=True, callback=count)
        summary = {
            "env": spec.name,
            "gym_id": spec.gym_id,
            "seed": config.seed,
            "reward": config.reward,
            "algo": config.algo,
            "overrides": config.overrides,
            "hyperparams": config.hyperparams,
            "fixed_horizon": config.fixed_horizon,
            "timesteps": int(agent.num_timesteps),
            "true_return_mean": float(np.mean(returns)),
            "true_return_std": float(np.std(returns)),
            "eval_episodes": len(returns),
            "wall_seconds": round(time.time() - start, 1),
            "learn_seconds": round(learn_seconds, 1),
            "steps_per_second": round((agent.num_timesteps - resumed_from) / max(learn_seconds, 1e-9), 1),
            # CPU seconds inside learn: the whole process's (every thread), and of them the learned
            # reward's background scorer's and an asynchronous fitter's worker's, where they ran.
            "cpu_seconds": cpu_seconds,
            "device": device,
            # Whether glibc kept freed memory for reuse (build.keep_freed_memory), and the process's
            # peak resident memory so far (of every run it made, where one process made several).
            "kept_freed_memory": kept_freed_memory,
            "peak_rss_mb": _peak_rss_mb(),
            "resumed_from_step": resumed_from if resume else None,
            "stopped_at_max_minutes": config.max_minutes is not None and agent.num_timesteps < steps,
            "run_dir": str(run),
            **_loop_summary(config, stages, callback if learned else None, pretrain_seconds, final_fit_seconds,
                            labels_used),
        }
        run.write_summary(summary)
        venv.close()
        if stages is not None and stages.querier.store is not store:
            stages.querier.store.close()  # the connection the fitter's worker asked through
        if store is not None:
            store.close()
        return summary


class Checkpoints(BaseCallback):
    """``checkpoints/policy_<steps>_steps.zip`` every ``every`` calls (as SB3's ``CheckpointCallback``
    names them), each written whole: a kill mid-save leaves the checkpoint before it to resume from."""

    def __init__(self, every: int, run: RunDir):
        super().__init__()
        self.every, self.run = every, run

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            self.run.save_policy(self.model, self.run.checkpoint_dir / f"policy_{self.num_timesteps}_steps.zip")
        return True


class RolloutThreads(BaseCallback):
    """The agent's torch runs on ``threads`` threads while it collects a rollout, and on as many as
    before while it updates and after ``learn`` (torch's thread count is the calling thread's)."""

    def __init__(self, threads: int):
        super().__init__()
        self.threads = threads
        self._update_threads: int | None = None  # read at each rollout's start

    def _on_rollout_start(self) -> None:
        self._update_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def _on_rollout_end(self) -> None:
        torch.set_num_threads(self._update_threads)

    def _on_training_end(self) -> None:
        # A rollout cut short (--max-minutes) never reaches its end; learn's end comes all the same.
        if self._update_threads is not None:
            torch.set_num_threads(self._update_threads)

    def _on_step(self) -> bool:
        return True


class Deadline(BaseCallback):
    """Ends ``learn`` at the first env step after ``deadline`` (a ``time.time()``): ``--max-minutes``."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def _on_step(self) -> bool:
        return time.time() < self.deadline


def _config_record(config: TrainConfig, spec: EnvSpec, preset: Preset, labels: int, steps: int,
                   device: str) -> dict[str, Any]:
    """What ``config.json`` holds: the config with its defaults made concrete, and the preset."""
    return {**asdict(config), "labels": labels, "steps": steps, "gym_id": spec.gym_id, "device": device,
            # how to build an id a module of the user's registered, in a process that has not imported it
            "env_registration": registration(config.env),
            "preset": {k: as_data(v) for k, v in asdict(preset).items()}}


def as_data(value: Any) -> Any:
    """A preset value as JSON data: SB3's linear schedules as ``{"linear_schedule": {start, end,
    end_fraction}}`` (rl-zoo writes ``lin_<start>``), classes (an optimizer) by their import path,
    containers element by element; anything else JSON cannot hold, as its ``repr``."""
    if isinstance(value, dict):
        return {str(k): as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_data(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if type(value).__name__ == "LinearSchedule":
        return {"linear_schedule": {"start": value.start, "end": value.end, "end_fraction": value.end_fraction}}
    return repr(value)


def _worker_cpu(stages) -> float | None:
    cpu_seconds = getattr(stages.fitter, "cpu_seconds", None) if stages is not None else None
    return cpu_seconds() if cpu_seconds is not None else None


def _cpu_seconds(learn: float, stages, callback, worker_before: float | None) -> dict[str, float]:
    """The summary's ``cpu_seconds``: the process's CPU seconds inside learn, and of them the
    background scorer's (``scorer``) and an asynchronous fitter's worker's (``worker``), where they ran."""
    out = {"learn": round(learn, 1)}
    if getattr(callback, "scorer_cpu", 0.0):
        out["scorer"] = round(callback.scorer_cpu, 1)
    worker = _worker_cpu(stages)
    if worker is not None and worker_before is not None:
        out["worker"] = round(worker - worker_before, 1)
    return out


def _peak_rss_mb() -> float | None:
    """The process's peak resident memory in MB (None where ``resource`` is missing: Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _loop_summary(config: TrainConfig, stages, callback, pretrain_seconds: float, final_fit_seconds: float,
                  labels_used: int) -> dict[str, Any]:
    """The summary's figures of the preference loop (None, or 0 labels, for a true-reward run)."""
    if stages is None:
        return {"query": None, "teacher": None, "pessimism": None, "rank_size": None, "labels_used": 0,
                "queries_asked": 0, "rm_val_accuracy": None, "rm_labels": None, "rm_val_labels": None,
                "loop_seconds": None, "worker_seconds": None, "picks": None,
                "pretrain_seconds": None, "final_fit_seconds": None}
    stats = stages.fitter.last_stats
    return {
        "query": config.query,
        "teacher": config.teacher if config.feedback == "synthetic" else None,
        "pessimism": config.pessimism,
        "rank_size": config.rank_size,
        "labels_used": labels_used,  # in the store at the final fit
        "queries_asked": stages.querier.asked,
        "rm_val_accuracy": stats.val_accuracy if stats else None,
        "rm_labels": stats.n_train + stats.n_val if stats else None,  # the labels the saved ensemble was fit on
        "rm_val_labels": stats.n_val if stats else None,  # of them held out, what rm_val_accuracy is measured on
        # Wall seconds of each stage the preference loop adds inside learn (see PreferenceCallback).
        "loop_seconds": {k: round(v, 1) for k, v in callback.seconds.items()},
        # An asynchronous fitter's worker, beside the agent: asking, refitting, held and overlapping
        # the agent's updates (see AsyncFitter.seconds); None for a fitter in the agent's thread.
        "worker_seconds": {k: round(v, 1) for k, v in stages.fitter.seconds.items()} or None,
        # Picks by the ensemble's outputs over the run: from the clips' kept member returns, or with
        # every candidate scored again (and how many clips that scored); see Querier.
        "picks": dict(stages.querier.picks),
        "pretrain_seconds": round(pretrain_seconds, 1),
        # Waiting, after learn, for the refit on every label (an asynchronous fitter's last one).
        "final_fit_seconds": round(final_fit_seconds, 1),
    }


def resume(run_dir: str | Path) -> dict[str, Any]:
    """Continue a killed run from its last policy checkpoint, with every label in its store.

    The run's ``config.json`` gives the configuration. RL restarts at the checkpoint's step count
    with the label schedule where the store says it is, the reward model refit on every stored label,
    and new queries drawn from new rollouts only (no pair is asked twice). A checkpoint loads as
    tensors only (SB3's ``set_parameters``), so no code from the run directory is run.
    """
    run = RunDir(run_dir)
    saved = run.config()
    if run.finished:
        raise PrefrlError(f"{run} already finished (it has summary.json): nothing to resume")
    config = TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__})
    config.run_dir = str(run)
    return train(config, resume=True)
