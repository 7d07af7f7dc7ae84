"""Fault drills for the store, on either store (a SQLite file or a ``postgresql://`` URL): a labeling
writer that acknowledges each label only after its commit, killed with SIGKILL at random moments; and
a burst of writers on one store.

Used by ``tests/test_faults.py`` and ``tests/test_store_pg.py`` (short) and
``experiments/fault_soak.py`` (long); not part of the installed package. Run as a script, it runs a
drill on a new store (a file that does not exist yet, or an empty PostgreSQL store such as
``experiments/pg_server.py`` prints):

    python experiments/drills.py kill --store STORE [--kills 200] [--queries 100000]
    python experiments/drills.py burst --store STORE [--seconds 60] [--rate 100] [--queries 100000]

and it is the drills' writer and trainer processes:

    python experiments/drills.py writer STORE LABELER [RATE]

claims pending comparisons one at a time, labels each, and prints ``ack <id>`` after the commit
returns (RATE labels per second at most; 0: as fast as it can); ``python experiments/drills.py
trainer STORE`` reads every label and asks new queries twice a second, as the trainer does. A URL's
password reaches these processes as ``PGPASSWORD``, never on their command line, and no message
here shows it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

from prefrl.clips import Clip
from prefrl.errors import StoreError
from prefrl.stores import is_store_url, open_store
from prefrl.store_pg import _without_password

try:
    import psycopg
except ImportError:  # SQLite drills need no psycopg
    psycopg = None

__all__ = ["make_store", "kill_writer_drill", "check_store", "burst_drill"]

# What a writer or the trainer counts as an error (and goes on): a refused or failed call of either
# store. SQLite's own errors ("database is locked") come as sqlite3.Error; the PostgreSQL store turns
# the server's into one-line StoreErrors, and psycopg's are caught too should one get past it.
STORE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, StoreError) + ((psycopg.Error,) if psycopg else ())


def make_store(location: str | Path, n_queries: int, seed: int = 0):
    """A cartpole store with ``n_queries`` pending comparisons over small random clips, at ``location``
    (a path or a ``postgresql://`` URL; a server's store must be empty or a cartpole store)."""
    rng = np.random.default_rng(seed)
    store = open_store(location, env="cartpole")
    clips = [Clip(rng.normal(size=(5, 4)).astype(np.float32), rng.integers(0, 2, 5), rng.normal(size=5).astype(np.float32))
             for _ in range(64)]
    ids = store.add_clips(clips)
    pairs = [tuple(int(v) for v in rng.choice(ids, 2, replace=False)) for _ in range(n_queries)]
    store.add_queries(pairs, source="drill")
    return store


# Rows no prefrl call writes: each query, its count of offending rows. Plain SQL that both stores run.
# (An answered comparison always has a labeler: the drills, the teachers and the windows give one;
# only `prefrl import` of rows without a labeler would be reported here.)
_ROW_CHECKS = (
    ("comparisons with a status other than pending, labeled, skipped",
     "SELECT COUNT(*) FROM comparisons WHERE status NOT IN ('pending', 'labeled', 'skipped')"),
    ("labeled comparisons without a preference of 0, 0.5 or 1",
     "SELECT COUNT(*) FROM comparisons WHERE status = 'labeled' AND (preference IS NULL OR preference NOT IN "
     "(0.0, 0.5, 1.0))"),
    ("comparisons not labeled that hold a preference",
     "SELECT COUNT(*) FROM comparisons WHERE status <> 'labeled' AND preference IS NOT NULL"),
    ("answered comparisons without a labeler or a time",
     "SELECT COUNT(*) FROM comparisons WHERE status <> 'pending' AND (labeler IS NULL OR labeled_at IS NULL)"),
    ("pending comparisons that hold a labeler or a time of answer",
     "SELECT COUNT(*) FROM comparisons WHERE status = 'pending' AND (labeler IS NOT NULL OR labeled_at IS NOT NULL)"),
    ("comparisons whose clips are missing",
     "SELECT COUNT(*) FROM comparisons WHERE left_id NOT IN (SELECT id FROM clips) OR right_id NOT IN "
     "(SELECT id FROM clips)"),
    ("rankings with a status other than pending, labeled, skipped, or labeled without a ranking",
     "SELECT COUNT(*) FROM rankings WHERE status NOT IN ('pending', 'labeled', 'skipped') OR "
     "(status = 'labeled') <> (ranking IS NOT NULL)"),
    ("answered rankings without a labeler or a time",
     "SELECT COUNT(*) FROM rankings WHERE status <> 'pending' AND (labeler IS NULL OR labeled_at IS NULL)"),
)


def _server_problems(db) -> list[str]:
    """What can be checked on a PostgreSQL server (no file to check: the owner role cannot run amcheck),
    in the caller's one snapshot: the rows read by sequential scans and again through the indexes must
    agree, no id is held twice, and the statuses add up to the rows."""
    problems = []
    counts = {}
    for how, settings in (("heap", {"enable_seqscan": "on", "enable_indexscan": "off", "enable_indexonlyscan": "off",
                                    "enable_bitmapscan": "off"}),
                          ("index", {"enable_seqscan": "off", "enable_indexscan": "on", "enable_indexonlyscan": "on",
                                     "enable_bitmapscan": "on"})):
        for name, value in settings.items():
            db.execute(f"SET LOCAL {name} = {value}")
        counts[how] = {
            "comparisons by status": sorted(db.execute(
                "SELECT status, COUNT(*) FROM comparisons WHERE status IN ('pending', 'labeled', 'skipped')"
                " GROUP BY status").fetchall()),
            "rankings by status": sorted(db.execute(
                "SELECT status, COUNT(*) FROM rankings WHERE status IN ('pending', 'labeled', 'skipped')"
                " GROUP BY status").fetchall()),
            "comparison ids": db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM comparisons WHERE id > 0").fetchone(),
            "clip ids": db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM clips WHERE id > 0").fetchone(),
        }
    for what in counts["heap"]:
        if counts["heap"][what] != counts["index"][what]:
            problems.append(f"{what}: {counts['heap'][what]} read from the table, {counts['index'][what]} through "
                            "its index")
    for what in ("comparison ids", "clip ids"):
        total, distinct = counts["heap"][what]
        if total != distinct:
            problems.append(f"{total - distinct} {what} held twice")
    for name in settings:
        db.execute(f"RESET {name}")
    total = db.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0]
    by_status = sum(n for _, n in counts["heap"]["comparisons by status"])
    if total != by_status:
        problems.append(f"{total} comparisons, but {by_status} counted by status")
    return problems


def check_store(location: str | Path, acknowledged: Collection[int] | Mapping[int, str]) -> list[str]:
    """Problems found in the store at ``location`` (none: all is well): SQLite's integrity check, or on
    a PostgreSQL server the checks :func:`_server_problems` makes; on both, rows no prefrl call writes
    (``_ROW_CHECKS``: every labeled comparison has a preference and a labeler, no row breaks the
    tables' CHECKs, no comparison of missing clips); and acknowledged labels missing from the store.
    ``acknowledged`` holds comparison ids, or maps them to the labeler that acknowledged each: then a
    label answered by another labeler (a pair answered twice) is a problem too."""
    if is_store_url(location):
        if psycopg is None:
            raise StoreError(f"{_without_password(str(location))} is a PostgreSQL store, and psycopg is not installed")
        db = psycopg.connect(str(location), connect_timeout=10)  # every read below in one transaction:
        db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot, while writers go on
        db.read_only = True
        problems = _server_problems(db)
    else:
        db = sqlite3.connect(location)
        problems = [r[0] for r in db.execute("PRAGMA integrity_check") if r[0] != "ok"]
    try:
        for what, query in _ROW_CHECKS:
            n = db.execute(query).fetchone()[0]
            if n:
                problems.append(f"{n} {what}")
        labeled = dict(db.execute("SELECT id, labeler FROM comparisons WHERE status <> 'pending'").fetchall())
    finally:
        db.close()
    lost = sorted(set(acknowledged) - set(labeled))
    if lost:
        problems.append(f"{len(lost)} acknowledged labels missing, e.g. {lost[:5]}")
    if isinstance(acknowledged, Mapping):
        other = sorted(i for i, who in acknowledged.items() if i in labeled and labeled[i] != who)
        if other:
            problems.append(f"{len(other)} acknowledged labels stored under another labeler, e.g. "
                            f"{[(i, acknowledged[i], labeled[i]) for i in other[:3]]}")
    return problems


def _for_child(location: str | Path) -> tuple[str, dict[str, str]]:
    """The store's location for a child's command line, and the child's environment: a URL's password
    moves to ``PGPASSWORD``, so that no command line (``ps``) or message shows it."""
    env = dict(os.environ)
    location = str(location)
    if is_store_url(location) and urlsplit(location).password is not None:
        env["PGPASSWORD"] = unquote(urlsplit(location).password)
        location = _without_password(location)
    return location, env


def _log_dir(location: str | Path) -> tuple[Path, str, bool]:
    """Where a drill's processes write their logs: beside a SQLite file (as ``FILE.NAME.log``), or in
    a temporary directory for a server's store (the bool: remove that directory afterwards)."""
    if is_store_url(location):
        return Path(tempfile.mkdtemp(prefix="prefrl-drill-")), "", True
    path = Path(location)
    return path.parent, path.name + ".", False


def _acks(lines: list[str], name: str, into: dict[int, str], problems: list[str]) -> int:
    """Add the ids acknowledged in ``lines`` to ``into`` (id: labeler); an id acknowledged before, by
    this or another writer, is a pair answered twice. Returns how many ``lines`` acknowledged."""
    ids = Counter(int(line.split()[1]) for line in lines if line.startswith("ack "))
    twice = sorted(i for i, n in ids.items() if n > 1 or i in into)
    if twice:
        problems.append(f"{name}: {len(twice)} pairs acknowledged twice, e.g. {twice[:5]}")
    into.update((i, name) for i in ids)
    return len(ids)


def kill_writer_drill(location: str | Path, kills: int, seed: int = 0, max_wait: float = 1.0) -> dict:
    """Start a writer on the store, SIGKILL it after a random 0..``max_wait`` s, check the store;
    ``kills`` times. Returns the labels acknowledged, the writers' errors (each a failed call the
    writer reported and went on from: no label lost, none acknowledged) and the problems found (none,
    if all is well)."""
    rng = np.random.default_rng(seed)
    target, env = _for_child(location)
    logs, prefix, remove = _log_dir(location)
    acknowledged: dict[int, str] = {}
    problems: list[str] = []
    errors: list[str] = []
    try:
        for k in range(kills):
            # Acks go to a file: what the writer printed before the kill is in the file, and a full pipe
            # never stalls the writer.
            log = logs / f"{prefix}writer{k}.log"
            with log.open("w") as out:
                proc = subprocess.Popen([sys.executable, __file__, "writer", target, f"w{k}"], stdout=out, env=env)
            while "ready" not in log.read_text() and proc.poll() is None:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, max_wait))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            lines = log.read_text().split("\n")[:-1]  # a line the kill cut short has no newline: not an ack
            log.unlink()
            if not lines or lines[0] != "ready":
                problems.append(f"kill {k}: the writer did not start")
            errors += [f"kill {k}: {line}" for line in lines if line.startswith("error ")]
            _acks(lines, f"w{k}", acknowledged, problems)
            problems += [f"kill {k}: {p}" for p in check_store(location, acknowledged)]
    finally:
        if remove:
            shutil.rmtree(logs, ignore_errors=True)
    return {"kills": kills, "acknowledged": len(acknowledged), "errors": errors, "problems": problems}


def burst_drill(location: str | Path, seconds: float, rate: float = 100.0, ui_rate: float = 5.0) -> dict:
    """Two labeling processes (claim, label, commit: two UI windows whose people answer ``ui_rate``
    pairs a second, faster than people do), a scripted writer at ``rate`` labels a second, and a trainer
    process (every 0.5 s it reads every label and asks 20 new queries) on one store for ``seconds``
    (after all four have opened it). Returns the labels acknowledged by each, their errors ("database
    is locked" among them: every line a process printed that is not an ack, a read or its start, a
    traceback too) and the store's problems (acknowledged labels lost, pairs answered twice among
    them)."""
    procs, logs = [], []
    target, env = _for_child(location)
    log_dir, prefix, remove = _log_dir(location)
    roles = [("writer", "ui-1", ui_rate), ("writer", "ui-2", ui_rate), ("writer", "burst", rate),
             ("trainer", "trainer", 0.0)]
    try:
        for role, name, r in roles:
            log = log_dir / f"{prefix}{name}.log"
            with log.open("w") as out:
                procs.append(subprocess.Popen([sys.executable, __file__, role, target, name, str(r)],
                                              stdout=out, stderr=subprocess.STDOUT, env=env))
            logs.append(log)
        while not all(log.read_text().startswith("ready") for log in logs) and all(p.poll() is None for p in procs):
            time.sleep(0.05)
        time.sleep(seconds)
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        acknowledged: dict[str, int] = {}
        acked: dict[int, str] = {}
        errors: list[str] = []
        problems: list[str] = []
        for (_, name, _), log in zip(roles, logs):
            lines = log.read_text().split("\n")[:-1]
            log.unlink()
            acknowledged[name] = _acks(lines, name, acked, problems)
            errors += [f"{name}: {line}" for line in lines if not line.startswith(("ack ", "ready", "read "))]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if remove:
            shutil.rmtree(log_dir, ignore_errors=True)
    return {"seconds": seconds, "acknowledged": acknowledged, "errors": errors,
            "problems": problems + check_store(location, acked)}


def _writer(location: str, labeler: str, rate: float = 0.0) -> None:
    store = open_store(location, create=False)
    print("ready", flush=True)
    rng = np.random.default_rng()
    start, done = time.monotonic(), 0
    while True:
        if rate:  # paced by the clock, not by sleeps after each label: a steady ``rate`` a second
            time.sleep(max(0.0, start + done / rate - time.monotonic()))
        try:
            comparison = store.claim(labeler)
            if comparison is None:
                time.sleep(0.01)
                continue
            store.record_labels([(comparison.id, float(rng.choice([0.0, 0.5, 1.0])))], labeler=labeler)
        except STORE_ERRORS as exc:
            print(f"error {type(exc).__name__}: {' '.join(str(exc).split())}", flush=True)
            continue
        print(f"ack {comparison.id}", flush=True)  # only after the commit has returned
        done += 1


def _trainer(location: str) -> None:
    """The trainer's side of the store: read every label, ask a batch of new queries, twice a second."""
    store = open_store(location, create=False)
    print("ready", flush=True)
    rng = np.random.default_rng()
    clip_ids = store.clip_ids()
    while True:
        try:
            n = len(store.comparisons("labeled"))
            store.add_queries([tuple(int(v) for v in rng.choice(clip_ids, 2, replace=False)) for _ in range(20)],
                              source="drill")
            print(f"read {n}", flush=True)
        except STORE_ERRORS as exc:
            print(f"error {type(exc).__name__}: {' '.join(str(exc).split())}", flush=True)
        time.sleep(0.5)


def _drill(argv: list[str]) -> int:
    """``kill`` or ``burst`` on a new store, from the command line; prints the result."""
    p = argparse.ArgumentParser(prog="python experiments/drills.py", description="A fault drill on a new store.")
    p.add_argument("drill", choices=["kill", "burst"])
    p.add_argument("--store", required=True, help="a SQLite file that does not exist yet, or the URL of an "
                   "empty PostgreSQL store (experiments/pg_server.py prints one; or PGPASSWORD and a URL without it)")
    p.add_argument("--queries", type=int, default=100_000, help="pending comparisons to make first")
    p.add_argument("--kills", type=int, default=200, help="kill: SIGKILLs of the writer")
    p.add_argument("--max-wait", type=float, default=1.0, help="kill: each kill a random 0..MAX_WAIT s after the "
                   "writer opened the store")
    p.add_argument("--seconds", type=float, default=60.0, help="burst: how long")
    p.add_argument("--rate", type=float, default=100.0, help="burst: the scripted writer's labels a second")
    args = p.parse_args(argv)
    shown = _without_password(args.store) if is_store_url(args.store) else args.store
    if not is_store_url(args.store) and Path(args.store).exists():
        p.error(f"{shown} exists: give a new file")
    t = time.time()
    make_store(args.store, args.queries).close()
    print(f"{shown}: a new store with {args.queries:,} pending comparisons ({time.time() - t:.1f} s)", flush=True)
    t = time.time()
    if args.drill == "kill":
        r = kill_writer_drill(args.store, kills=args.kills, seed=0, max_wait=args.max_wait)
        print(f"kill drill: writer SIGKILLed {r['kills']} times at random moments (0-{args.max_wait:g} s after it opened "
              f"the store): {r['acknowledged']:,} labels acknowledged, writer errors {len(r['errors'])} "
              f"{r['errors'][:3]}, problems (lost labels among them): {r['problems'] or 'none'} "
              f"({time.time() - t:.0f} s)")
    else:
        r = burst_drill(args.store, seconds=args.seconds, rate=args.rate)
        per_second = {name: round(n / r["seconds"], 1) for name, n in r["acknowledged"].items()}
        print(f"burst drill for {r['seconds']:g} s: labels acknowledged {r['acknowledged']} "
              f"(a second: {per_second}, all writers {sum(r['acknowledged'].values()) / r['seconds']:.1f}), "
              f"errors {len(r['errors'])} {r['errors'][:3]}, store problems (lost labels among them): "
              f"{r['problems'] or 'none'}")
    return 0 if not r["problems"] and not r["errors"] else 1


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "writer":
        _writer(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)
    elif len(sys.argv) >= 3 and sys.argv[1] == "trainer":
        _trainer(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] in ("kill", "burst"):
        sys.exit(_drill(sys.argv[1:]))
    else:
        sys.exit("usage: python experiments/drills.py kill|burst --store STORE ... | writer STORE LABELER [RATE] | "
                 "trainer STORE")
