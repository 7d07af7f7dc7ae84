"""What the experiment scripts share: the code version, cached runs over envs × seeds × configurations
in worker processes, the options every script takes, and markdown tables.

A run's result lives in ``OUT/<version>/<env>-<label>-<settings hash>-s<seed>/summary.json``. The
version is :func:`code_version`: a hash of the installed package's source (``prefrl`` with its envs
and language-model path) and, where a script runs code of its own, of that code too. So a rerun
after any change of code runs again, and a rerun of the same code reads the results it already has
(a killed sweep resumes where it stopped); no script prints numbers of older code. A worker refuses
to run if the code it imported is not the version the sweep was started with.

A run is ``prefrl train`` (:func:`train_run`) unless the script gives its own job,
``job(run, run_dir) -> dict`` (the language-model path, a training run followed by an evaluation,
imitation in its own venv); what the job returns is written as the run's ``summary.json``.

    from harness import grid, run_all
    results = run_all(grid(["cartpole"], range(10), {"oracle": {}}), out="runs/sweep")
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import multiprocessing as mp
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["code_version", "source_hash", "Run", "grid", "train_run", "run_all", "made", "parse_config",
           "count_at_least", "markdown_table", "parser", "write_readme"]


UNVERSIONED = ("labeling_ui",)  # subpackages no synthetic run imports
README = Path(__file__).resolve().parent.parent / "README.md"


def source_hash(*parts: Callable | str) -> str:
    """12 hex digits of a hash of ``parts``: a function by its source text, a string as it is."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update((part if isinstance(part, str) else inspect.getsource(part)).encode() + b"\0")
    return digest.hexdigest()[:12]


def code_version(*extra: Callable | str) -> str:
    """A 12-hex-digit hash of every source file the runs made here execute: the imported ``prefrl``
    package with envs/ (the same for a repository checkout, where envs/ sits beside prefrl/, and an
    installed copy). The labeling window (labeling_ui/) is left out: the synthetic-teacher runs of
    the experiments never import it (tests/test_harness.py checks), so work on the window does not
    throw away hours of runs whose code did not change.

    ``extra``: a script's own code its runs execute (its job's functions, by their source), hashed
    in with the package's: ``code_version(held_out_clips, fidelity)``."""
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
    package = digest.hexdigest()[:12]
    return source_hash(package, *extra) if extra else package


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


@dataclass(frozen=True)
class Run:
    """One run of a sweep: one configuration on one env with one seed.

    Attributes:
        label: the configuration's name in tables.
        env: suite name or gymnasium id (for a job that runs on no env, what it runs on: ``lm``).
        seed: the run's seed.
        settings: what the job reads. For ``prefrl train`` (:func:`train_run`): keyword arguments of
            :class:`prefrl.TrainConfig`; keys that are not its fields are preset fields
            (``reward_epochs``) and go into its ``overrides``.
        threads: torch threads the run computes with: 1 for runs side by side (one a core), None for
            torch's default (every core: a run alone on the machine, as a speed figure needs). Part of
            the cache key where not 1: the thread count changes floating-point sums, so the numbers.
    """

    label: str
    env: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    threads: int | None = 1

    def directory(self, out: str | Path, version: str) -> Path:
        key = self.settings if self.threads == 1 else {**self.settings, "torch threads": self.threads}
        tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:6]
        return Path(out) / version / f"{_slug(self.env)}-{_slug(self.label)}-{tag}-s{self.seed}"


def grid(envs: Iterable[str], seeds: Iterable[int], configs: dict[str, dict[str, Any]],
         threads: int | None = 1) -> list[Run]:
    """Every configuration on every env with every seed: env by env, and within an env seed by seed
    (every configuration of seed 0 first, so a sweep stopped part-way has whole seeds to compare).
    ``configs``: name -> settings; ``threads``: see :class:`Run`."""
    return [Run(name, env, seed, dict(settings), threads) for env in envs for seed in seeds
            for name, settings in configs.items()]


def train_run(run: Run, run_dir: str) -> dict:
    """The default job: ``prefrl train`` on the run's env, seed and settings, into ``run_dir``;
    returns its summary (which it writes itself)."""
    from prefrl import TrainConfig, train

    fields = TrainConfig.__dataclass_fields__
    kwargs = {k: v for k, v in run.settings.items() if k in fields}
    overrides = {**kwargs.pop("overrides", {}), **{k: v for k, v in run.settings.items() if k not in fields}}
    return train(TrainConfig(run.env, seed=run.seed, run_dir=run_dir, progress_bar=False, overrides=overrides,
                             **kwargs))


def _run_one(task: tuple[Run, str, str, Callable, Callable[[], str]]) -> dict:
    """One run's result: read from its summary.json where this version made it, else made now."""
    run, run_dir, version, job, version_of = task
    identity = {"label": run.label, "env": run.env, "seed": run.seed}
    summary_path = Path(run_dir) / "summary.json"
    if summary_path.exists():
        # A run made on another machine and copied in says where in a MACHINE file beside its summary.
        machine = Path(run_dir) / "MACHINE"
        where = {"machine": machine.read_text().strip()} if machine.exists() else {}
        return {**json.loads(summary_path.read_text()), **identity, "cached": True, **where}
    if version_of() != version:
        raise RuntimeError(f"the code changed since the sweep started (now {version_of()}, started with "
                           f"{version}): rerun the sweep")
    import shutil
    import time

    import torch

    resumable = job is train_run and _checkpointed(run_dir)
    if not resumable:
        shutil.rmtree(run_dir, ignore_errors=True)  # a run killed before its first checkpoint starts over
    threads = torch.get_num_threads()
    torch.set_num_threads(run.threads or threads)
    start = time.time()
    try:
        if resumable:  # a long run killed part-way (a machine restart) goes on from its last checkpoint
            from prefrl import resume

            print(json.dumps({**identity, "resumed_from": str(_checkpointed(run_dir))}), flush=True)
            result = resume(run_dir)
        else:
            result = job(run, run_dir)
    finally:
        torch.set_num_threads(threads)
    if not summary_path.exists():  # prefrl train writes its own; another job's result is written here
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        partial = summary_path.with_suffix(".partial")
        partial.write_text(json.dumps(result, indent=2))
        partial.replace(summary_path)
    score = {"true_return": result["true_return_mean"]} if "true_return_mean" in result else {}
    print(json.dumps({**identity, **score, "wall_s": round(time.time() - start, 1)}), flush=True)
    return {**result, **identity, "cached": False}


def _checkpointed(run_dir: str | Path) -> Path | None:
    """The last policy checkpoint of a run this code version began and did not finish, if any (the
    run directory is keyed by the code version, so what is there was made by this code)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        return None
    checkpoints = sorted((run_dir / "checkpoints").glob("policy_*_steps.zip"),
                         key=lambda p: int(p.stem.split("_")[1]))
    return checkpoints[-1] if checkpoints else None


def _tasks(runs: list[Run], out: str | Path, job: Callable, version: Callable[[], str] | None) -> list[tuple]:
    version_of = version or code_version
    made_by = version_of()
    return [(run, str(run.directory(out, made_by)), made_by, job, version_of) for run in runs]


def run_all(runs: list[Run], out: str | Path, workers: int = 2, job: Callable[[Run, str], dict] = train_run,
            version: Callable[[], str] | None = None) -> list[dict]:
    """Make every run this code version has not made yet, ``workers`` at a time (each in a process of
    its own), and return the results of all of them in the order given, each with its ``label``,
    ``env``, ``seed`` and whether it was ``cached``.

    Args:
        job: makes one run's result, ``job(run, run_dir) -> dict``; a top-level function (workers
            import it). Default: ``prefrl train``.
        version: what the cache is keyed by (default :func:`code_version`); a script whose job runs
            code of its own passes ``functools.partial(code_version, its_function, ...)``.
    """
    tasks = _tasks(runs, out, job, version)
    todo = sum(not Path(task[1], "summary.json").exists() for task in tasks)
    print(f"version {tasks[0][2] if tasks else '-'}: {todo} of {len(tasks)} runs to make, results under "
          f"{Path(out) / (tasks[0][2] if tasks else '')}", flush=True)
    if workers <= 1 or todo <= 1:
        return [_run_one(task) for task in tasks]
    with ProcessPoolExecutor(min(workers, todo), mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_run_one, tasks))


def made(runs: list[Run], out: str | Path, version: Callable[[], str] | None = None) -> list[dict]:
    """The results of the runs this code version has already made (the rest are left out)."""
    return [_run_one(task) for task in _tasks(runs, out, train_run, version)
            if Path(task[1], "summary.json").exists()]


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    """``"NAME:key=value,key=value"`` -> (NAME, settings); values are JSON where they parse (as
    ``prefrl train --set``)."""
    from prefrl import TrainConfig

    name, _, params = text.partition(":")
    settings: dict[str, Any] = {}
    for item in (item for item in params.split(",") if item):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"configuration {text!r}: {item!r} is not key=value; write e.g. NAME:reward_epochs=60")
        field = TrainConfig.__dataclass_fields__.get(key)
        try:  # ``reward=true`` names the true reward, not JSON's true: a string field of TrainConfig stays a string
            settings[key] = raw if field is not None and field.type in ("str", "str | None") else json.loads(raw)
        except json.JSONDecodeError:
            settings[key] = raw
    return name, settings


def count_at_least(values: list[float], threshold: float) -> str:
    """``"9 of 10"``: how many values reach the threshold."""
    return f"{sum(v >= threshold for v in values)} of {len(values)}"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table: one header row, then one line per row (cells as ``str`` gives them)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def parser(doc: str, out: str, seeds: list[int] | None = None, envs: list[str] | None = None,
           workers: int | None = 2) -> argparse.ArgumentParser:
    """The options the experiment scripts share, with the script's defaults: ``--out`` (where its runs
    are cached), ``--workers`` (runs at a time; None: the script runs one at a time and has no
    such option), and, where a default is given, ``--seeds`` (or ``--seed``) and ``--envs`` (or
    ``--env``). The description is the first line of ``doc``, the script's docstring."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    if envs is not None:
        p.add_argument("--envs", "--env", nargs="+", default=envs, help="suite names or gymnasium ids")
    if seeds is not None:
        p.add_argument("--seeds", "--seed", type=int, nargs="+", default=seeds)
    if workers is not None:
        p.add_argument("--workers", type=int, default=workers, help="runs at a time, one torch thread each")
    p.add_argument("--out", default=out, help="where the runs are cached, under their code version")
    return p


def write_readme(block: str, text: str, readme: Path = README) -> None:
    """Put ``text`` between the lines ``<!-- BLOCK:begin -->`` and ``<!-- BLOCK:end -->`` of README.md."""
    begin, end = f"<!-- {block}:begin -->", f"<!-- {block}:end -->"
    old = readme.read_text()
    if begin not in old or end not in old:
        raise SystemExit(f"{readme} has no {begin} ... {end} block to replace: add the two lines around the table")
    readme.write_text(re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{text}{end}", old,
                             flags=re.S))
    print(f"wrote the {block} block into {readme}")
