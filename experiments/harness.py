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

The runs are made in local worker processes, or, with ``run_all(..., ray=ADDRESS)`` (``--ray``), as
tasks on a Ray cluster. A run that fails (its job raises, its worker is killed) is reported and the
sweep goes on: its result says ``"failed"``, and a rerun makes it again.

    from harness import grid, run_all
    results = run_all(grid(["cartpole"], range(10), {"oracle": {}}), out="runs/sweep")
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import inspect
import json
import math
import multiprocessing as mp
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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
        cpus: the CPUs a Ray task of the run asks for (``run_all(..., ray=...)``); not in the cache key.
        gpus: the GPUs a Ray task of the run asks for; None: one where the settings' ``device`` is
            ``cuda`` (or ``cuda:N``), else none (Ray then hides the GPUs, so ``auto`` runs on the CPU).
    """

    label: str
    env: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    threads: int | None = 1
    cpus: float = 1
    gpus: float | None = None

    def resources(self) -> tuple[float, float]:
        """(CPUs, GPUs) the run's Ray task asks for."""
        cuda = str(self.settings.get("device", "")).startswith("cuda")
        return self.cpus, self.gpus if self.gpus is not None else float(cuda)

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
            version: Callable[[], str] | None = None, ray: str | None = None) -> list[dict]:
    """Make every run this code version has not made yet, ``workers`` at a time (each in a process of
    its own; one run or ``workers=1``: one after another in this process), and return the results of
    all of them in the order given, each with its ``label``, ``env``, ``seed`` and whether it was
    ``cached``.

    A run that fails (its job raises, its process is killed, its Ray task is lost) does not stop the
    sweep: one line names it and its error, and its result is only ``label``, ``env``, ``seed``,
    ``cached`` (False) and ``failed``, the error in one line. It leaves no summary.json, so a rerun
    makes it again (and reads the runs that finished from the cache).

    Args:
        job: makes one run's result, ``job(run, run_dir) -> dict``; a top-level function (workers
            import it). Default: ``prefrl train``.
        version: what the cache is keyed by (default :func:`code_version`); a script whose job runs
            code of its own passes ``functools.partial(code_version, its_function, ...)``.
        ray: make the runs not cached yet as Ray tasks, one a run, each asking for the run's
            :meth:`Run.resources`: on the cluster at this address (``auto``, ``HOST:6379``,
            ``ray://HOST:10001``), or ``local``: on a Ray instance started here with ``workers``
            CPUs. None: local worker processes (Ray is not imported). If Ray is already initialized
            in this process, its instance is used and left running; with every run cached, Ray is
            not started. A task runs the same code as a
            local worker, with the code the worker's node has installed (a worker whose ``prefrl``
            is not this sweep's version refuses the run), and imports this module and the job's from
            the paths they have here: the workers need them, and ``out``, at the same paths, on
            storage they share (a local instance does). A task is not retried by Ray: a rerun of
            the sweep is.
    """
    tasks = _tasks(runs, out if ray is None else Path(out).resolve(), job, version)  # a Ray worker's cwd is its own
    todo = sum(not Path(task[1], "summary.json").exists() for task in tasks)
    print(f"version {tasks[0][2] if tasks else '-'}: {todo} of {len(tasks)} runs to make, results under "
          f"{Path(out) / (tasks[0][2] if tasks else '')}", flush=True)
    if ray is not None and todo:
        results = _run_on_ray(tasks, ray, workers)
    elif workers <= 1 or todo <= 1:
        results = [_guarded(_run_one, task) for task in tasks]
    else:
        results = _in_worker_processes(tasks, min(workers, todo))
    failed = [r for r in results if "failed" in r]
    if failed:
        print(f"{len(failed)} of {len(results)} runs failed ({'; '.join(_name(r) for r in failed)}): rerun to "
              f"make them again", flush=True)
    return results


def _name(result: dict) -> str:
    return f"{result['label']} on {result['env']}, seed {result['seed']}"


def _failed(run: Run, error: BaseException) -> dict:
    """A failed run's result, printed as one line (the job's traceback, where it raised, before it on
    stderr)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):  # a Ray task's error: the job's exception, its traceback in the text
        print(error, file=sys.stderr, flush=True)
        error = cause
    elif not isinstance(error, BrokenProcessPool) and not type(error).__module__.startswith("ray."):
        # the job raised (in a worker process: its traceback is the cause of this one)
        print("".join(traceback.format_exception(error)), file=sys.stderr, flush=True)
    if isinstance(error, BrokenProcessPool):
        text = "its worker process died (killed, out of memory or crashed)"
    else:
        lines = str(error).strip().splitlines()
        text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    result = {"label": run.label, "env": run.env, "seed": run.seed, "cached": False, "failed": text}
    print(json.dumps(result), flush=True)
    return result


def _guarded(make: Callable[[tuple], dict], task: tuple) -> dict:
    """``make(task)``, or the run's failure where it fails."""
    try:
        return make(task)
    except Exception as error:
        return _failed(task[0], error)


def _in_worker_processes(tasks: list[tuple], workers: int) -> list[dict]:
    """The tasks' results, made ``workers`` at a time in worker processes. Each worker is a pool of
    its own: a run that kills its process (out of memory, a signal) fails alone, where it would
    break a shared ProcessPoolExecutor and every run in it; the next run gets a fresh process."""
    pools: list[ProcessPoolExecutor] = []
    mine = threading.local()

    def in_worker(task: tuple) -> dict:
        if getattr(mine, "pool", None) is None:
            mine.pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
            pools.append(mine.pool)
        try:
            return mine.pool.submit(_run_one, task).result()
        except BrokenProcessPool:
            mine.pool = None
            raise

    with ThreadPoolExecutor(workers) as threads:
        try:
            return list(threads.map(functools.partial(_guarded, in_worker), tasks))
        except BaseException:  # Ctrl-C: start no more runs
            threads.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            for pool in pools:
                pool.shutdown(wait=False)


def _import_root(function: Callable) -> str | None:
    """The directory on ``sys.path`` that ``function``'s module is imported from (None: a script's
    ``__main__``, which Ray sends by value)."""
    function = getattr(function, "func", function)  # functools.partial
    module = sys.modules.get(getattr(function, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if module is None or path is None or module.__name__ == "__main__":
        return None
    depth = module.__name__.count(".") + (Path(path).name == "__init__.py")
    return str(Path(path).resolve().parents[depth])


def _run_on_ray(tasks: list[tuple], address: str, workers: int) -> list[dict]:
    """The tasks' results, each run not cached yet made by a Ray task (see :func:`run_all`)."""
    import ray

    started = not ray.is_initialized()
    if started and address == "local":
        cpus = max([workers, *(math.ceil(task[0].resources()[0]) for task in tasks)])
        ray.init(address="local", num_cpus=cpus, include_dashboard=False)  # a new instance, never another's
    elif started:
        ray.init(address=address)
    try:
        # The workers import this module and the job's (pickled by name) from the paths they have here.
        roots = dict.fromkeys(r for r in (_import_root(_run_one), *(_import_root(t[3]) for t in tasks)) if r)
        runtime_env = {"env_vars": {"PYTHONPATH": ":".join([*roots, "${PYTHONPATH}"])}}
        remote = ray.remote(_run_one)
        gpus_here = ray.cluster_resources().get("GPU", 0) if address == "local" else None
        results: list[dict | None] = [None] * len(tasks)
        pending = {}
        for i, task in enumerate(tasks):
            cpus, gpus = task[0].resources()
            if Path(task[1], "summary.json").exists():
                results[i] = _guarded(_run_one, task)
            elif gpus_here is not None and gpus > gpus_here:
                results[i] = _failed(task[0], RuntimeError(f"it asks for {gpus:g} GPUs and the local Ray instance "
                                                           f"has {gpus_here:g}"))
            else:
                pending[remote.options(num_cpus=cpus, num_gpus=gpus, max_retries=0,
                                       runtime_env=runtime_env).remote(task)] = i
        waiting = list(pending)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            for ref in done:
                try:
                    results[pending[ref]] = ray.get(ref)
                except Exception as error:  # the job's exception, a killed worker, a lost node
                    results[pending[ref]] = _failed(tasks[pending[ref]][0], error)
        return results
    finally:
        if started:
            ray.shutdown()


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
    are cached), ``--workers`` (runs at a time) and ``--ray`` (the Ray cluster to make them on; see
    :func:`run_all`) (``workers=None``: the script runs one at a time and has neither option), and,
    where a default is given, ``--seeds`` (or ``--seed``) and ``--envs`` (or
    ``--env``). The description is the first line of ``doc``, the script's docstring."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    if envs is not None:
        p.add_argument("--envs", "--env", nargs="+", default=envs, help="suite names or gymnasium ids")
    if seeds is not None:
        p.add_argument("--seeds", "--seed", type=int, nargs="+", default=seeds)
    if workers is not None:
        p.add_argument("--workers", type=int, default=workers, help="runs at a time, one torch thread each")
        p.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="make the runs as Ray tasks: on the cluster at ADDRESS (auto, HOST:6379, "
                            "ray://HOST:10001) or on a local instance of --workers CPUs (local); --out must "
                            "be on storage the workers share. Default: local worker processes")
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
