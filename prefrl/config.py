"""The configuration of one ``prefrl train`` run: a typed dataclass, checked before anything runs."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from .algos import ALGOS, check_algo, check_hyperparams, try_build
from .envs import action_space, frames_for_people, renders_rgb, resolve
from .errors import PrefrlError
from .presets import Preset, preset_for
from .queries import QUERY_STRATEGIES
from .teachers import make_teacher

__all__ = ["TrainConfig", "check_record", "parse_overrides", "read_config_file"]

# Seeds go to numpy (below 2**32), with offsets added for the other envs and the evaluation.
MAX_SEED = 2**31 - 1

# The numeric preset fields' allowed ranges for --set: (least, most, in words); None: no bound.
_RANGES: dict[str, tuple[float | None, float | None, str]] = {
    **{k: (1, None, "a whole number ≥ 1") for k in (
        "n_envs", "timesteps", "clip_length", "label_batch", "candidate_steps", "reward_batch", "reward_epochs",
        "reward_hidden", "random_steps", "eval_episodes", "a2c_envs", "off_policy_envs", "off_policy_timesteps",
        "round_steps", "checkpoints")},
    **{k: (0, None, "a whole number ≥ 0") for k in (
        "greedy_steps", "reward_updates", "fit_delay", "reward_augment", "check_clips", "vector_threads",
        "rollout_threads")},
    "labels": (2, None, "at least 2"),
    "initial_fraction": (0, 1, "in [0, 1]"),
    "explore_fraction": (0, 1, "in [0, 1]"),
    "t0_fraction": (1e-9, None, "a positive number"),
    "reward_std": (1e-9, None, "a positive number"),
    "reward_noise": (0, 0.999, "in [0, 1)"),
    "reward_dropout": (0, 0.999, "in [0, 1)"),
    "reward_target_accuracy": (1e-9, 1, "in (0, 1]"),
}


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
        algo: ``ppo`` (rl-zoo's tuned PPO), ``a2c`` (the paper's Atari learner, with rl-zoo's settings), or
            the off-policy ``sac``, ``td3`` (Box actions) and ``dqn`` (Discrete actions), whose replay
            buffer is relabeled after each reward-model update (PEBBLE).
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
        max_minutes: stop PPO once the run has taken this many minutes since it began (the labels asked
            and the fit before RL counted), for a run sized by a time budget ("as many steps as ten
            minutes allow"); the final refit and the evaluation come after it. None: ``steps`` alone.
        overrides: fields of the env's :class:`~prefrl.presets.Preset` to replace for this run
            (``{"reward_epochs": 60}``; ``--set reward_epochs=60`` on the command line), for sweeps.
        hyperparams: keyword arguments of the SB3 learner that replace the preset's
            (``{"learning_rate": 3e-4}``; ``--hyperparams learning_rate=3e-4``, as rl-zoo's flag), held
            as data: ``lin_<x>`` for a linear schedule, ``noise_type``/``noise_std`` for TD3's and
            SAC's action noise, torch class names such as ``nn.ReLU`` in ``policy_kwargs``.
        config_file: the YAML or TOML file (``--config``) the settings were read from, kept for the
            record; the settings themselves are in the other fields.
        store: a ``postgresql://user@host:port/db`` URL: the run's clips and labels live in that
            (empty) database, where labelers on other machines reach them, instead of
            ``RUN_DIR/store.sqlite``; the password comes from ``PGPASSWORD`` or ``~/.pgpass``, never
            the URL (``config.json`` records it). None: the SQLite file.
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
    max_minutes: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    store: str | None = None

    def resolved_device(self) -> str:
        """``auto`` made concrete: ``cuda`` when torch sees a GPU, else ``cpu``."""
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def preset(self) -> Preset:
        """The env's preset (Atari's GPU fields on a CUDA device) with ``overrides`` applied."""
        spec = resolve(self.env)
        return replace(preset_for(spec.name, spec.atari, self.resolved_device()), **self.overrides)

    def validate(self) -> None:
        """Raise :class:`PrefrlError` naming the first bad value and what to do."""
        base = preset_for(resolve(self.env).name, resolve(self.env).atari, self.resolved_device())
        known = {f.name for f in fields(Preset)}
        for key, value in self.overrides.items():
            if key not in known:
                raise PrefrlError(f"--set {key}: not a preset field; use one of {', '.join(sorted(known))}")
            default = getattr(base, key)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = (isinstance(value, bool) if isinstance(default, bool) else
                  number if isinstance(default, (int, float)) else
                  isinstance(value, type(default)) if default is not None else value is None or number)
            if ok and isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
                ok = False  # a count takes a whole number
            if not ok:
                raise PrefrlError(f"--set {key}={json.dumps(value)}: expected a value like the preset's "
                                  f"{json.dumps(default)}")
            if number:
                low, high, what = _RANGES.get(key, (None, None, ""))
                if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
                    raise PrefrlError(f"--set {key}={value}: must be {what or 'a finite number'}")
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
        if self.feedback == "human" and self.reward == "learned" and frames_for_people(resolve(self.env)):
            cannot = None if resolve(self.env).atari else renders_rgb(self.env)
            if cannot:
                raise PrefrlError(f"--feedback human: people label {self.env!r}'s clips as frames it renders, and in "
                                  f"render_mode='rgb_array' it gave {cannot}, not RGB frames: give the env an "
                                  "rgb_array render, or label with --feedback synthetic")
        if self.rank_size > 4 and self.feedback == "human":
            raise PrefrlError(f"--rank-size {self.rank_size} is too many clips for the labeling window: with "
                              "--feedback human use 2 (pairs), 3 or 4")
        if not (math.isfinite(self.pessimism) and self.pessimism >= 0):
            raise PrefrlError(f"--pessimism {self.pessimism} must be a finite number ≥ 0 (0: the ensemble mean)")
        if not 0 <= self.seed <= MAX_SEED:
            raise PrefrlError(f"--seed {self.seed} must be in 0..{MAX_SEED}")
        if self.algo not in ALGOS:
            raise PrefrlError(f"--algo {self.algo!r} is not known: use one of {', '.join(ALGOS)}")
        check_algo(self.algo, self.env, action_space(self.env))
        check_hyperparams(self.algo, self.hyperparams)
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
        if self.max_minutes is not None and not (self.max_minutes > 0 and math.isfinite(self.max_minutes)):
            raise PrefrlError(f"--max-minutes {self.max_minutes} must be a positive number of minutes")
        preset = self.preset()
        labels, steps = self.labels or preset.labels, self.steps or preset.timesteps_for(self.algo)
        initial = self.initial_labels or min(labels, max(2, round(preset.initial_fraction * labels)))
        clips = steps // preset.clip_length  # the clips RL's rollouts yield, all envs together
        if self.reward == "learned" and labels - initial > clips:
            raise PrefrlError(f"--labels {labels}: {labels - initial} of them would be asked during RL, but "
                              f"{steps} steps yield only {clips} clips of {preset.clip_length} steps: ask at most "
                              f"{initial + clips} labels, or give more --steps")
        if self.hyperparams:
            try_build(self.algo, self.env, {**preset.algo(self.algo)[1], **self.hyperparams})
        if self.store is not None:
            _check_store_url(self.store, self.reward)
        if self.query not in QUERY_STRATEGIES:
            raise PrefrlError(f"--query {self.query!r} is not known: use one of {', '.join(QUERY_STRATEGIES)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise PrefrlError(f"--device {self.device!r} is not known: use auto, cpu or cuda")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise PrefrlError(f"--device {self.device} asked for CUDA, but torch sees no GPU: use --device auto or cpu")


_KINDS: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str, "bool": bool,
                                               "dict[str, Any]": dict}


def _wrong_type(record: dict) -> str | None:
    """The first of :class:`TrainConfig`'s fields in ``record`` whose value is not of its type, said
    as "NAME is VALUE, not of type T"; None if all are."""
    for f in fields(TrainConfig):
        if f.name not in record:
            continue
        value = record[f.name]
        kinds = [k.strip() for k in str(f.type).split("|")]
        if not any(value is None if k == "None" else
                   isinstance(value, _KINDS.get(k, object)) and not (k in ("int", "float") and isinstance(value, bool))
                   for k in kinds):
            return f"{f.name} is {json.dumps(value)}, not of type {f.type}"
    return None


def check_record(record: Any, source: Any) -> None:
    """Check a run's saved ``config.json`` (``record``, read from ``source``): a JSON object naming the
    env, each of :class:`TrainConfig`'s fields it holds of that field's type. One clear line if not."""
    if not isinstance(record, dict) or not isinstance(record.get("env"), str):
        raise PrefrlError(f"{source} is not a prefrl run's config (a JSON object naming its env): it was damaged or "
                          "written by hand; restore it from a backup")
    wrong = _wrong_type(record)
    if wrong:
        raise PrefrlError(f"{source}: {wrong}: it was damaged or written by hand; restore it from a backup")


# YAML 1.1 (PyYAML) reads 1e-3 as text (it wants 1.0e-3); rl-zoo's files write !!float for it.
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def _yaml_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _yaml_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_yaml_numbers(v) for v in value]
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value)
    return value


def read_config_file(path: str) -> dict[str, Any]:
    """A ``--config`` file (YAML, ``.yaml``/``.yml``, or TOML, ``.toml``) as :class:`TrainConfig`'s
    keyword arguments: its keys are ``train``'s options by their long names (``max_minutes`` or
    ``max-minutes``), with a ``set`` table of preset fields and a ``hyperparams`` table of the
    learner's; every key and type checked, one line naming the first that is wrong.

    Example (TOML)::

        env = "pendulum"
        algo = "sac"
        labels = 200
        [set]
        round_steps = 500
        [hyperparams]
        learning_rate = 1e-3
        policy_kwargs = { net_arch = [64, 64] }
    """
    suffix = Path(path).suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise PrefrlError(f"--config {path}: name a .toml, .yaml or .yml file (its suffix says how to read it)")
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PrefrlError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise PrefrlError(f"--config {path} is a directory: name the settings file") from None
    except UnicodeDecodeError:
        raise PrefrlError(f"--config {path} is not UTF-8 text: save it as UTF-8") from None
    try:
        if suffix == ".toml":
            data = _toml().loads(text)
        else:
            import yaml

            data = _yaml_numbers(yaml.safe_load(text))
    except Exception as exc:  # tomllib's and PyYAML's own errors say where the file is wrong
        what = "TOML" if suffix == ".toml" else "YAML"
        raise PrefrlError(f"--config {path} is not valid {what}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise PrefrlError(f"--config {path} holds {type(data).__name__}, not a table of settings (key: value lines)")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    allowed = {f.name for f in fields(TrainConfig)} - {"overrides", "hyperparams", "config_file"} | {"set", "hyperparams"}
    for key, value in data.items():
        if key not in allowed:
            raise PrefrlError(f"--config {path}: unknown setting {key!r}; use {', '.join(sorted(allowed))}")
        if key in ("set", "hyperparams") and not isinstance(value, dict):
            raise PrefrlError(f"--config {path}: {key} must be a table of KEY = VALUE, not {json.dumps(value)}")
    settings = {k: v for k, v in data.items() if k not in ("set", "hyperparams")}
    for f in fields(TrainConfig):  # 1e5 steps: a whole number written as a float
        value = settings.get(f.name)
        if "int" in str(f.type) and isinstance(value, float) and value.is_integer():
            settings[f.name] = int(value)
    wrong = _wrong_type(settings)
    if wrong:
        raise PrefrlError(f"--config {path}: {wrong}")
    return {**settings, "overrides": dict(data.get("set", {})), "hyperparams": dict(data.get("hyperparams", {})),
            "config_file": str(Path(path).resolve())}


def _check_store_url(url: str, reward: str) -> None:
    from urllib.parse import urlsplit

    from .stores import is_store_url

    if not is_store_url(url):
        raise PrefrlError(f"--store {url!r} is not a PostgreSQL URL: write postgresql://USER@HOST:PORT/DATABASE "
                          "(leave --store out for the run directory's own store.sqlite)")
    if urlsplit(url).password is not None:
        raise PrefrlError("--store: the URL holds a password, and config.json records the URL: give the password in "
                          "PGPASSWORD or ~/.pgpass instead")
    if reward == "true":
        raise PrefrlError("--store needs --reward learned: the true-reward baseline keeps no labels")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PrefrlError("--store postgresql://... needs psycopg: pip install 'prefrl[postgres]'") from None


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


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
