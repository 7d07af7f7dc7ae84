"""``prefrl train``: one run of preference-based (or true-reward) PPO, from config to summary."""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import safe_mean, set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv

from .clips import Clip, ClipRecorder
from .envs import make_env, resolve
from .errors import PrefrlError, TrainingError
from .learned_reward import LearnedRewardVecEnv
from .loop import PreferenceCallback, PreferenceLoop
from .presets import Preset, preset_for
from .queries import QUERY_STRATEGIES
from .reward_model import RewardEnsemble, RewardModelConfig, step_features
from .reward_training import EnsembleTrainer
from .schedule import LabelSchedule
from .store import PreferenceStore
from .teachers import make_teacher

__all__ = ["TrainConfig", "train", "resume", "parse_overrides"]

STORE_NAME = "store.sqlite"


@dataclass
class TrainConfig:
    """One run. Fields left None take the env's preset (see :mod:`prefrl.presets`).

    Attributes:
        env: a suite short name (``cartpole``) or a gymnasium id.
        reward: ``learned`` (preference PPO) or ``true`` (the same PPO on the true reward: the baseline).
        labels: the label budget (synthetic oracle comparisons).
        steps: PPO env steps.
        seed: seeds PPO, the envs, query selection and the reward model.
        run_dir: where the store, checkpoints, logs and summary go; a fresh ``runs/...`` if None.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``; PPO and the reward model both use it.
        query: ``random`` or ``disagreement``.
        fixed_horizon: hide termination (see ``prefrl.envs.FixedHorizon``); the honest default.
        progress_bar: show SB3's progress bar.
        algo: ``ppo`` (rl-zoo's tuned PPO) or ``a2c`` (the paper's Atari learner, with rl-zoo's settings).
        reward_dropout: dropout after each convolution of the Atari reward CNN (None: the preset's).
        teacher: the synthetic teacher, ``NAME`` or ``NAME:key=value,...``: B-Pref's ``oracle``, ``noisy``
            (β=1), ``myopic`` (γ=0.9), ``mistake`` (ε=0.1), ``skip`` (0.1), ``equal`` (0.1); see
            :class:`prefrl.teachers.SimulatedTeacher`.
        pessimism: PPO optimizes the ensemble mean less this many member stds (a lower confidence
            bound on the learned reward; 0: the mean).
        rank_size: clips per query: 2 (pairs, Bradley–Terry) or K > 2: the synthetic teacher ranks K
            clips and the reward model learns from the ranking with the Plackett–Luce loss; a
            ranking counts as one label of the budget.
        initial_labels: labels asked on random-policy clips before RL (None: the preset's share of
            ``labels``; the paper asked 500).
        feedback: ``synthetic`` (the oracle answers at once) or ``human`` (queries wait in the store for
            ``prefrl label``; RL starts once the initial ones are answered).
        overrides: fields of the env's :class:`~prefrl.presets.Preset` to replace for this run
            (``{"reward_epochs": 60}``; ``--set reward_epochs=60`` on the command line), for sweeps.
    """

    env: str
    reward: str = "learned"
    labels: int | None = None
    steps: int | None = None
    seed: int = 0
    run_dir: str | None = None
    device: str = "auto"
    query: str = "disagreement"
    fixed_horizon: bool = True
    progress_bar: bool = True
    algo: str = "ppo"
    reward_dropout: float | None = None
    feedback: str = "synthetic"
    initial_labels: int | None = None
    teacher: str = "oracle"
    pessimism: float = 0.0
    rank_size: int = 2
    overrides: dict[str, Any] = field(default_factory=dict)

    def preset(self) -> Preset:
        """The env's preset with ``overrides`` applied."""
        spec = resolve(self.env)
        return replace(preset_for(spec.name, spec.atari), **self.overrides)

    def validate(self) -> None:
        """Raise :class:`PrefrlError` naming the first bad value and what to do."""
        base = preset_for(resolve(self.env).name, resolve(self.env).atari)
        known = {f.name for f in fields(Preset)}
        for key, value in self.overrides.items():
            if key not in known:
                raise PrefrlError(f"--set {key}: not a preset field; use one of {', '.join(sorted(known))}")
            default = getattr(base, key)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = (isinstance(value, bool) if isinstance(default, bool) else
                  number if isinstance(default, (int, float)) else
                  isinstance(value, type(default)) if default is not None else value is None or number)
            if not ok:
                raise PrefrlError(f"--set {key}={json.dumps(value)}: expected a value like the preset's "
                                  f"{json.dumps(default)}")
        if not 0.0 < self.preset().labels_until <= 1.0:
            raise PrefrlError(f"--set labels_until={self.preset().labels_until}: must be in (0, 1], the share of "
                              "the run by which every label has been asked")
        if self.reward not in ("learned", "true"):
            raise PrefrlError(f"--reward {self.reward!r} is not known: use learned or true")
        if self.feedback not in ("synthetic", "human"):
            raise PrefrlError(f"--feedback {self.feedback!r} is not known: use synthetic or human")
        if self.feedback == "human" and self.reward == "true":
            raise PrefrlError("--feedback human needs --reward learned: the true-reward baseline asks no labels")
        try:
            make_teacher(self.teacher)
        except ValueError as exc:
            raise PrefrlError(f"--teacher: {exc}") from None
        if self.rank_size < 2:
            raise PrefrlError(f"--rank-size {self.rank_size} must be at least 2 (2: pairs)")
        if self.rank_size > 4 and self.feedback == "human":
            raise PrefrlError(f"--rank-size {self.rank_size} is too many clips for the labeling window: with "
                              "--feedback human use 2 (pairs), 3 or 4")
        if self.pessimism < 0:
            raise PrefrlError(f"--pessimism {self.pessimism} must be ≥ 0 (0: the ensemble mean)")
        if self.algo not in ("ppo", "a2c"):
            raise PrefrlError(f"--algo {self.algo!r} is not known: use ppo or a2c")
        if self.reward_dropout is not None and not 0.0 <= self.reward_dropout < 1.0:
            raise PrefrlError(f"--reward-dropout {self.reward_dropout} must be in [0, 1): the paper used 0.5")
        if self.labels is not None and self.labels < 2:
            raise PrefrlError(f"--labels {self.labels} is too few: the least is 2, because the reward model is first "
                              f"fitted on labels asked before RL and needs two (the preset asks for "
                              f"{self.preset().labels})")
        if self.initial_labels is not None and not 2 <= self.initial_labels <= (self.labels or self.preset().labels):
            raise PrefrlError(f"--initial-labels {self.initial_labels} must be at least 2 and at most the label budget")
        if self.steps is not None and self.steps < 1:
            raise PrefrlError(f"--steps {self.steps} must be a positive number of env steps")
        if self.query not in QUERY_STRATEGIES:
            raise PrefrlError(f"--query {self.query!r} is not known: use one of {', '.join(QUERY_STRATEGIES)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise PrefrlError(f"--device {self.device!r} is not known: use auto, cpu or cuda")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise PrefrlError(f"--device {self.device} asked for CUDA, but torch sees no GPU: use --device auto or cpu")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["reward_epochs=60", "reward_arch=mlp"]`` -> ``{"reward_epochs": 60, "reward_arch": "mlp"}``:
    each value is read as JSON, else kept as a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PrefrlError(f"--set {item!r} is not FIELD=VALUE: write e.g. --set reward_epochs=60")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _run_dir(config: TrainConfig) -> Path:
    if config.run_dir:
        path = Path(config.run_dir)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{resolve(config.env).name}-{config.reward}-s{config.seed}-{stamp}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / ".write-test").touch()
        (path / ".write-test").unlink()
    except OSError as exc:
        raise PrefrlError(f"cannot write to run directory {path} ({exc.strerror}): choose another --run-dir") from None
    return path


def _write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all (a kill mid-write leaves the old one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _Metrics:
    """Writes one row of ``metrics.csv`` per PPO update (per ``every`` env steps at most: A2C updates
    every 80 steps)."""

    FIELDS = ["timesteps", "labels", "true_episode_return", "learned_episode_return", "rm_val_accuracy",
              "rm_val_loss", "rm_train_loss", "wall_seconds"]
    # Per rollout of a learned-reward run: the mean true and learned reward per step; on a rollout
    # after which the ensemble was refit (refit = 1), the checks of the ensemble before and after
    # the refit against the true reward (prefrl.diagnostics).
    ROLLOUT = ["true_reward", "learned_reward", "refit", "rm_train_accuracy", "rm_epochs"] + [
        f"{key}_{when}" for when in ("before", "after")
        for key in ("pair_accuracy", "decided_pairs", "clip_corr", "step_corr", "reward_mean", "reward_std")]

    def __init__(self, path: Path, start: float, every: int = 0, append: bool = False, learned: bool = True):
        self._every = every
        self._last = -every
        fresh = not (append and path.exists())
        self._fields = self.FIELDS + ([f"rollout_{k}" if k in ("true_reward", "learned_reward") else k
                                       for k in self.ROLLOUT] if learned else [])
        if not fresh:  # a resumed run goes on with the columns its file already has
            with path.open(newline="") as f:
                self._fields = next(csv.reader(f), self._fields)
        self._file = path.open("w" if fresh else "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self._fields, extrasaction="ignore")
        if fresh:
            self._writer.writeheader()
        self._start = start

    def row(self, model, labels: int | None = None, learned: list[float] | None = None, stats=None,
            rollout: dict[str, float] | None = None) -> None:
        if model.num_timesteps - self._last < self._every:
            return
        self._last = model.num_timesteps
        row = {
            "timesteps": model.num_timesteps,
            "labels": labels if labels is not None else "",
            "true_episode_return": _fmt(safe_mean([ep["r"] for ep in model.ep_info_buffer])),
            "learned_episode_return": _fmt(np.mean(learned[-20:])) if learned else "",
            "rm_val_accuracy": _fmt(stats.val_accuracy) if stats else "",
            "rm_val_loss": _fmt(stats.val_loss) if stats else "",
            "rm_train_loss": _fmt(stats.train_loss) if stats else "",
            "wall_seconds": f"{time.time() - self._start:.1f}",
        }
        if rollout:
            row.update({("rollout_" + k if k in ("true_reward", "learned_reward") else k): _fmt(v)
                        for k, v in rollout.items()})
            if rollout.get("refit") and stats:
                row.update(rm_train_accuracy=_fmt(stats.train_accuracy), rm_epochs=stats.epochs)
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


class _EachRollout(BaseCallback):
    """Calls ``fn(model)`` after each rollout: the metrics of the true-reward baseline."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.fn(self.model)


def _latest_checkpoint(run_dir: Path) -> tuple[Path | None, int]:
    """The newest policy checkpoint and its env steps ((None, 0) if there is none)."""
    found = []
    for path in (run_dir / "checkpoints").glob("policy_*_steps.zip"):
        try:
            found.append((int(path.stem.split("_")[1]), path))
        except ValueError:
            continue
    if not found:
        return None, 0
    steps, path = max(found)
    return path, steps


def load_policy(run_dir: str | Path, path: str | Path, device: str = "cpu"):
    """A run's saved policy (``policy.zip`` or a checkpoint), read as tensors only.

    SB3's own ``PPO.load`` unpickles the zip's data part, which can run code: a run from someone
    else must never be opened that way. Here the algorithm is rebuilt from the run's
    ``config.json`` (JSON) and the preset, and only the zip's ``state_dict`` tensors are loaded
    (``set_parameters``, ``torch.load(weights_only=True)``).
    """
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    spec = resolve(config["env"])
    algo_name = config.get("algo", "ppo")
    _, kwargs = replace(preset_for(spec.name, spec.atari), **config.get("overrides", {})).algo(algo_name)
    venv = DummyVecEnv([lambda: make_env(spec.name, fixed_horizon=config.get("fixed_horizon", True))])
    algo = {"ppo": PPO, "a2c": A2C}[algo_name]("CnnPolicy" if spec.atari else "MlpPolicy", venv, device=device,
                                               verbose=0, **kwargs)
    _set_parameters(algo, path, device)
    return algo


def _set_parameters(algo, path: str | Path, device: str) -> None:
    """Load a policy zip's tensors into ``algo`` (``set_parameters``: ``weights_only``, no code runs);
    a zip that cannot be read (cut short by a kill) is one clear line."""
    try:
        algo.set_parameters(str(path), device=device)
    except Exception as exc:
        raise PrefrlError(f"{path} cannot be read as a policy of this run ({type(exc).__name__}): it may have been cut "
                          "short by a kill; delete it and use the checkpoint before it") from None


def resume(run_dir: str | Path) -> dict:
    """Continue a killed run from its last policy checkpoint, with every label in its store.

    The run's ``config.json`` gives the configuration. RL restarts at the checkpoint's step count
    with the label schedule where the store says it is, the reward model refit on every stored label,
    and new queries drawn from new rollouts only (no pair is asked twice). A checkpoint loads as
    tensors only (SB3's ``set_parameters``), so no code from the run directory is run.
    """
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise PrefrlError(f"{run_dir} holds no config.json: give the directory of a `prefrl train` run to --resume")
    if (run_dir / "summary.json").exists():
        raise PrefrlError(f"{run_dir} already finished (it has summary.json): nothing to resume")
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PrefrlError(f"{path} is not valid JSON ({exc.msg}): the run cannot be resumed") from None
    fields = {f for f in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**{k: v for k, v in saved.items() if k in fields})
    config.run_dir = str(run_dir)
    return train(config, resume=True)


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Run one training job and return its summary (also written to ``summary.json``); with
    ``resume``, continue the killed run in ``config.run_dir`` (see :func:`resume`)."""
    config.validate()
    start = time.time()
    spec = resolve(config.env)
    preset = config.preset()
    labels = config.labels or preset.labels
    steps = config.steps or preset.timesteps
    device = "cuda" if config.device == "auto" and torch.cuda.is_available() else (
        "cpu" if config.device == "auto" else config.device)
    run_dir = _run_dir(config)
    store = PreferenceStore(run_dir / STORE_NAME, env=spec.name, create=not resume) \
        if config.reward == "learned" else None
    if store is not None and store.num_clips() and not resume:
        raise PrefrlError(f"{run_dir} already holds a run ({store.num_labels()} labels): choose a new --run-dir "
                          f"or continue it with --resume {run_dir}")
    checkpoint, done_steps = _latest_checkpoint(run_dir) if resume else (None, 0)
    if not resume:
        _write_atomic(run_dir / "config.json", json.dumps(
            {**asdict(config), "labels": labels, "steps": steps, "gym_id": spec.gym_id, "device": device,
             "preset": {k: (repr(v) if k in ("ppo", "a2c") else v) for k, v in asdict(preset).items()}}, indent=2))
    set_random_seed(config.seed)
    n_envs, algo_kwargs = preset.algo(config.algo)
    if device == "cpu" and not spec.atari:
        torch.set_num_threads(1)  # small MLPs: one thread is faster and leaves the other core free

    # People label Atari clips on the game's own screen in colour (score masked), recorded at every
    # step and kept packed; classic-control clips are drawn from their stored states instead.
    frames_for_people = config.feedback == "human" and spec.atari and config.reward == "learned"

    def make_venv(seed: int) -> DummyVecEnv:
        # A Monitor on the plain env, inside the fixed-horizon wrapper, logs the game's own episodes.
        render_mode = "rgb_array" if frames_for_people else None
        venv = DummyVecEnv([lambda: make_env(spec.name, fixed_horizon=config.fixed_horizon, inner_wrapper=Monitor,
                                             render_mode=render_mode) for _ in range(n_envs)])
        venv.seed(seed)
        venv.action_space.seed(seed)
        return venv

    venv = make_venv(config.seed)
    metrics = _Metrics(run_dir / "metrics.csv", start, every=1000 if config.algo == "a2c" else 0, append=resume,
                       learned=config.reward == "learned")
    loop = probe_venv = None
    if config.reward == "learned":
        venv = LearnedRewardVecEnv(venv, record_frames=frames_for_people)
        obs_space, act_space = venv.observation_space, venv.action_space
        if preset.reward_arch == "cnn":
            n_features, obs_shape = int(np.prod(obs_space.shape)), tuple(obs_space.shape)
        else:
            n_features, obs_shape = step_features(
                np.zeros((1, *obs_space.shape), np.float32), np.zeros((1, *act_space.shape)), obs_space, act_space,
                preset.reward_uses_action).shape[-1], None
        model = RewardEnsemble(RewardModelConfig(
            n_features, reward_std=preset.reward_std, use_action=preset.reward_uses_action, arch=preset.reward_arch,
            obs_shape=obs_shape, hidden=preset.reward_hidden,
            dropout=preset.reward_dropout if config.reward_dropout is None else config.reward_dropout)).to(device)
        initial = config.initial_labels or min(labels, max(2, round(preset.initial_fraction * labels)))
        # With a fit delay the trainer fits a copy while PPO reads the live ensemble.
        trainer = EnsembleTrainer(copy.deepcopy(model) if preset.fit_delay else model, noise=preset.reward_noise,
                                  epochs=preset.reward_epochs,
                                  target_accuracy=preset.reward_target_accuracy,
                                  min_updates=preset.reward_updates,
                                  refresh_feature_stats=preset.reward_feature_stats == "every",
                                  warm_start=preset.reward_warm_start,
                                  batch_size=preset.reward_batch,
                                  stats_sample=4096 if preset.reward_arch == "cnn" else 0, seed=config.seed)
        loop = PreferenceLoop(
            store=store, teacher=make_teacher(config.teacher, config.seed) if config.feedback == "synthetic" else None,
            model=model,
            trainer=trainer,
            recorder=ClipRecorder(n_envs, preset.clip_length,
                                  capacity=max(100, preset.candidate_steps // preset.clip_length)),
            observation_space=obs_space, action_space=act_space, query=config.query, seed=config.seed,
            save_dir=run_dir, pessimism=config.pessimism, rank_size=config.rank_size,
        )
        pretrain_start = time.time()
        if resume and store.num_labels() >= 2:
            if (run_dir / "reward_model.pt").exists():  # warm start from the last refit
                saved = RewardEnsemble.load(run_dir, device).state_dict()
                model.load_state_dict(saved)
                trainer.model.load_state_dict(saved)
                trainer.keep_feature_stats()
            loop.fit(epochs=None if (run_dir / "reward_model.pt").exists() else _first_fit_epochs(trainer))
        else:
            _pretrain(loop, make_venv(config.seed + 1), initial,
                      preset.random_steps or 10 * initial * preset.clip_length, frames=frames_for_people)
        pretrain_seconds = time.time() - pretrain_start
        schedule = LabelSchedule(labels, initial, steps, preset.t0_fraction * steps,
                                 labels_until=max(1, round(preset.labels_until * steps)))
        probe_venv = make_venv(config.seed + 2) if preset.greedy_steps else None
        callback = PreferenceCallback(
            loop, venv, schedule, label_batch(preset.label_batch, labels - initial),
            explore_steps=int(preset.explore_fraction * steps),
            # On CPU the reward CNN scores each 16 steps of the rollout on the core the envs leave idle.
            overlap=16 if device == "cpu" and preset.reward_arch == "cnn" else 0, fit_delay=preset.fit_delay,
            probe=_greedy_probe(probe_venv, preset.greedy_steps, preset.clip_length) if probe_venv else None,
            on_update=lambda cb: metrics.row(cb.model, loop.store.num_labels(), cb.learned_episode_returns,
                                             loop.last_stats, cb.rollout),
        )
    else:
        callback = _EachRollout(metrics.row)
    # Five policy checkpoints over the run, for comparing learned and true reward along the way.
    checkpoints = CheckpointCallback(max(1, steps // (5 * n_envs)), str(run_dir / "checkpoints"), "policy")

    algo = {"ppo": PPO, "a2c": A2C}[config.algo]
    ppo = algo("CnnPolicy" if spec.atari else "MlpPolicy", venv, seed=config.seed, device=device, verbose=0,
               tensorboard_log=str(run_dir / "tb"), **algo_kwargs)
    resumed_from = 0
    if checkpoint is not None:
        _set_parameters(ppo, checkpoint, device)
        ppo.num_timesteps = resumed_from = done_steps
    learn_start = time.time()
    ppo.learn(max(0, steps - resumed_from), callback=[callback, checkpoints], progress_bar=config.progress_bar,
              tb_log_name=config.algo, reset_num_timesteps=not resume)
    learn_seconds = time.time() - learn_start
    metrics.close()
    if probe_venv is not None:
        probe_venv.close()
    ppo.save(run_dir / "policy.zip")

    eval_env = Monitor(make_env(spec.name, fixed_horizon=False))
    eval_env.reset(seed=config.seed + 10_000)
    returns, _ = evaluate_policy(ppo, eval_env, n_eval_episodes=preset.eval_episodes, deterministic=True,
                                 return_episode_rewards=True)
    summary = {
        "env": spec.name,
        "gym_id": spec.gym_id,
        "seed": config.seed,
        "reward": config.reward,
        "algo": config.algo,
        "query": config.query if loop else None,
        "teacher": config.teacher if loop and loop.teacher else None,
        "pessimism": config.pessimism if loop else None,
        "rank_size": config.rank_size if loop else None,
        "overrides": config.overrides,
        "fixed_horizon": config.fixed_horizon,
        "timesteps": int(ppo.num_timesteps),
        "labels_used": store.num_labels() if store else 0,
        "queries_asked": loop.asked if loop else 0,
        "true_return_mean": float(np.mean(returns)),
        "true_return_std": float(np.std(returns)),
        "eval_episodes": len(returns),
        "rm_val_accuracy": loop.last_stats.val_accuracy if loop and loop.last_stats else None,
        "wall_seconds": round(time.time() - start, 1),
        "learn_seconds": round(learn_seconds, 1),
        "steps_per_second": round((ppo.num_timesteps - resumed_from) / max(learn_seconds, 1e-9), 1),
        "device": device,
        # Wall seconds of each stage the preference loop adds inside learn (see PreferenceCallback).
        "loop_seconds": {k: round(v, 1) for k, v in callback.seconds.items()} if loop else None,
        "pretrain_seconds": round(pretrain_seconds, 1) if loop else None,
        "resumed_from_step": resumed_from if resume else None,
        "run_dir": str(run_dir),
    }
    _write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    venv.close()
    if store is not None:
        store.close()
    return summary


MIN_ROUNDS = 5


def label_batch(preset_batch: int, online: int) -> int:
    """Fewest new labels asked (and, with people labeling, arrived) before a refit: the preset's
    batch, or less on a small budget, so that the ``online`` labels asked during RL come in at least
    ``MIN_ROUNDS`` rounds (with 15 online labels and a batch of 20, all of them would come in the
    last rollout and PPO would train the whole run on the initial ones)."""
    return max(1, min(preset_batch, math.ceil(online / MIN_ROUNDS)))


def _greedy_probe(venv: DummyVecEnv, steps: int, clip_length: int) -> Callable[[BaseAlgorithm, int], list[Clip]]:
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


def _pretrain(loop: PreferenceLoop, venv: DummyVecEnv, initial: int, random_steps: int, frames: bool = False) -> None:
    """Ask the initial labels on clips of ``random_steps`` random-policy steps and fit the reward
    model before RL starts (Christiano et al. 2017, App. A); ``frames``: record frames for people."""
    random_env = LearnedRewardVecEnv(venv, record_frames=frames)
    random_env.reset()
    n_steps = max(1, random_steps // venv.num_envs)
    for _ in range(n_steps):
        random_env.step(np.stack([random_env.action_space.sample() for _ in range(venv.num_envs)]))
    loop.collect(random_env.drain(), timestep=0)
    random_env.close()
    asked = loop.ask(initial, strategy="random")
    if asked < min(2, initial):
        raise PrefrlError(f"the random policy's clips gave {asked} distinct queries of the {initial} asked before RL: "
                          "lower the clip length or --rank-size")
    if loop.teacher is None:
        _wait_for_labels(loop.store)
    elif loop.store.num_labels() < 2:
        raise TrainingError(f"the teacher labeled {loop.store.num_labels()} of the {asked} initial queries (it "
                            f"skipped the rest): the reward model needs at least 2 labels to start; lower the "
                            f"teacher's skip threshold or ask more --initial-labels")
    loop.fit(epochs=_first_fit_epochs(loop.trainer))


def _first_fit_epochs(trainer: EnsembleTrainer) -> int:
    """Epochs of the first fit, from scratch: five times a warm-started refit's fixed count; with a
    target accuracy, the same cap as every fit (it stops when the target is reached)."""
    return trainer.epochs if trainer.target_accuracy is not None else 5 * trainer.epochs


def _wait_for_labels(store: PreferenceStore, poll: float = 0.5) -> None:
    """Block until people have answered every waiting query and at least two are labels."""
    run_dir = store.path.parent
    print(f"prefrl: waiting for {store.num_pending()} labels before RL starts. In another terminal run:\n"
          f"    prefrl label {run_dir}\n"
          f"(several windows may label at once; Ctrl-C stops, and every label given is kept)", flush=True)
    while store.num_pending() > 0 or store.num_labels() < 2:
        if store.num_pending() == 0:  # all answered, but too few were labels (skips): ask on
            raise PrefrlError(f"only {store.num_labels()} of the initial queries were labeled (the rest skipped): "
                              f"at least 2 labels are needed; rerun with a new --run-dir")
        time.sleep(poll)
    print(f"prefrl: {store.num_labels()} labels in; pre-training the reward model and starting RL", flush=True)
