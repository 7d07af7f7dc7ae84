"""What the experiment scripts share: the code version, cached `prefrl train` runs over seeds, and
markdown tables.

A run's result lives under ``OUT/<code version>/<env>-<label>-<settings hash>-s<seed>/``. The code
version is a hash of the installed package's source (``prefrl`` with its envs, labeling UI and
language-model path), so a rerun after any change of code trains again, and a rerun of the same
code reads the summaries it already has (a killed sweep resumes where it stopped). A worker refuses
to run if the code it imported is not the version the sweep was started with.

    from harness import Run, run_all
    results = run_all([Run("oracle", "cartpole", s, {}) for s in range(10)], out="runs/sweep")
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["code_version", "Run", "run_all", "parse_config", "markdown_table", "count_at_least"]


UNVERSIONED = ("labeling_ui",)  # subpackages no synthetic run imports


def code_version() -> str:
    """A 12-hex-digit hash of every source file the runs made here execute: the imported ``prefrl``
    package with envs/ (the same for a repository checkout, where envs/ sits beside prefrl/, and an
    installed copy). The labeling window (labeling_ui/) is left out: the synthetic-teacher runs of
    the experiments never import it (tests/test_harness.py checks), so work on the window does not
    throw away hours of runs whose code did not change."""
    import prefrl

    root = Path(prefrl.__file__).parent
    sources = {p.relative_to(root).as_posix(): p for p in root.rglob("*.py")
               if "__pycache__" not in p.parts and p.relative_to(root).parts[0] not in UNVERSIONED}
    for sub in ("envs",):
        if not (root / sub).is_dir() and (root.parent / sub).is_dir():
            sources.update({f"{sub}/{p.relative_to(root.parent / sub).as_posix()}": p
                            for p in (root.parent / sub).rglob("*.py") if "__pycache__" not in p.parts})
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name].read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Run:
    """One ``prefrl train`` run of a sweep.

    Attributes:
        label: the configuration's name in tables.
        env: suite name or gymnasium id.
        seed: the run's seed.
        settings: keyword arguments of :class:`prefrl.train.TrainConfig`; keys that are not its fields
            are preset fields (``reward_epochs``) and go into its ``overrides``.
    """

    label: str
    env: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)

    def directory(self, out: Path, version: str) -> Path:
        tag = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:6]
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.label)
        return out / version / f"{self.env}-{slug}-{tag}-s{self.seed}"


def _train_one(job: tuple[Run, str, str]) -> dict:
    run, run_dir, version = job
    summary_path = Path(run_dir) / "summary.json"
    if summary_path.exists():
        # A run made on another machine and copied in says where in a MACHINE file beside its summary.
        machine = Path(run_dir) / "MACHINE"
        where = {"machine": machine.read_text().strip()} if machine.exists() else {}
        return {**json.loads(summary_path.read_text()), "label": run.label, "cached": True, **where}
    if code_version() != version:
        raise RuntimeError(f"the code changed since the sweep started (now {code_version()}, started with "
                           f"{version}): rerun the sweep")
    import shutil

    import torch

    from prefrl.train import TrainConfig, train

    torch.set_num_threads(1)
    shutil.rmtree(run_dir, ignore_errors=True)  # a run killed part-way starts over
    fields = TrainConfig.__dataclass_fields__
    kwargs = {k: v for k, v in run.settings.items() if k in fields}
    overrides = {**kwargs.pop("overrides", {}), **{k: v for k, v in run.settings.items() if k not in fields}}
    summary = train(TrainConfig(run.env, seed=run.seed, run_dir=run_dir, progress_bar=False, overrides=overrides,
                                **kwargs))
    print(json.dumps({"label": run.label, "env": run.env, "seed": run.seed,
                      "true_return": summary["true_return_mean"], "wall_s": summary["wall_seconds"]}), flush=True)
    return {**summary, "label": run.label, "cached": False}


def run_all(runs: list[Run], out: str | Path, workers: int = 2) -> list[dict]:
    """Train every run not already done by this code version, ``workers`` at a time (one torch
    thread each), and return their summaries in the order given, each with its ``label``."""
    version = code_version()
    jobs = [(run, str(run.directory(Path(out), version)), version) for run in runs]
    print(f"code version {version}: {sum(not Path(d, 'summary.json').exists() for _, d, _ in jobs)} of "
          f"{len(jobs)} runs to train, results under {Path(out) / version}", flush=True)
    if workers <= 1:
        return [_train_one(job) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_train_one, jobs))


def made(runs: list[Run], out: str | Path) -> list[dict]:
    """The summaries of the runs this code version has already made (the rest are left out)."""
    version = code_version()
    jobs = [(run, str(run.directory(Path(out), version)), version) for run in runs]
    return [_train_one(job) for job in jobs if Path(job[1], "summary.json").exists()]


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    """``"NAME:key=value,key=value"`` -> (NAME, settings); values are JSON where they parse (as
    ``prefrl train --set``)."""
    from prefrl.train import TrainConfig, parse_overrides

    name, _, params = text.partition(":")
    items = [item for item in params.split(",") if item]
    settings = parse_overrides(items)
    for item in items:  # ``reward=true`` names the true reward, not JSON's true
        key, _, raw = item.partition("=")
        field = TrainConfig.__dataclass_fields__.get(key)
        if field is not None and field.type in ("str", "str | None"):
            settings[key] = raw
    return name, settings


def count_at_least(values: list[float], threshold: float) -> str:
    """``"9 of 10"``: how many values reach the threshold."""
    return f"{sum(v >= threshold for v in values)} of {len(values)}"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
