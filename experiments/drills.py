"""Fault drills for the store: a labeling writer that acknowledges each label only after its commit,
killed with SIGKILL at random moments; and a burst of writers on one store.

Used by ``tests/test_faults.py`` (short) and ``experiments/fault_soak.py`` (long); not part of the
installed package. Run as a script, it is the writer process:

    python experiments/drills.py writer STORE LABELER [RATE]

which claims pending comparisons one at a time, labels each, and prints ``ack <id>`` after the commit
returns (RATE labels per second at most; 0: as fast as it can); ``python experiments/drills.py
trainer STORE`` reads every label and asks new queries twice a second, as the trainer does.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from prefrl.clips import Clip
from prefrl.store import PreferenceStore

__all__ = ["make_store", "kill_writer_drill", "check_store", "burst_drill"]


def make_store(path: str | Path, n_queries: int, seed: int = 0) -> PreferenceStore:
    """A cartpole store with ``n_queries`` pending comparisons over small random clips."""
    rng = np.random.default_rng(seed)
    store = PreferenceStore(path, env="cartpole")
    clips = [Clip(rng.normal(size=(5, 4)).astype(np.float32), rng.integers(0, 2, 5), rng.normal(size=5).astype(np.float32))
             for _ in range(64)]
    ids = store.add_clips(clips)
    pairs = [tuple(int(v) for v in rng.choice(ids, 2, replace=False)) for _ in range(n_queries)]
    store.add_queries(pairs, source="drill")
    return store


def check_store(path: str | Path, acknowledged: set[int]) -> list[str]:
    """Problems found: SQLite's integrity check, and acknowledged labels missing from the store."""
    db = sqlite3.connect(path)
    try:
        problems = [r[0] for r in db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        labeled = {r[0] for r in db.execute("SELECT id FROM comparisons WHERE status != 'pending'")}
    finally:
        db.close()
    lost = sorted(acknowledged - labeled)
    if lost:
        problems.append(f"{len(lost)} acknowledged labels missing, e.g. {lost[:5]}")
    return problems


def kill_writer_drill(path: str | Path, kills: int, seed: int = 0, max_wait: float = 1.0) -> dict:
    """Start a writer on the store, SIGKILL it after a random 0..``max_wait`` s, check the store;
    ``kills`` times. Returns the labels acknowledged and the problems found (none, if all is well)."""
    rng = np.random.default_rng(seed)
    acknowledged: set[int] = set()
    problems: list[str] = []
    for k in range(kills):
        # Acks go to a file: what the writer printed before the kill is in the file, and a full pipe
        # never stalls the writer.
        log = Path(f"{path}.writer{k}.log")
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, __file__, "writer", str(path), f"w{k}"], stdout=out)
        while "ready" not in log.read_text() and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, max_wait))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        lines = log.read_text().split("\n")[:-1]  # a line the kill cut short has no newline: not an ack
        log.unlink()
        if not lines or lines[0] != "ready":
            problems.append(f"kill {k}: the writer did not start")
        acknowledged |= {int(line.split()[1]) for line in lines if line.startswith("ack ")}
        problems += [f"kill {k}: {p}" for p in check_store(path, acknowledged)]
    return {"kills": kills, "acknowledged": len(acknowledged), "problems": problems}


def burst_drill(path: str | Path, seconds: float, rate: float = 100.0, ui_rate: float = 5.0) -> dict:
    """Two labeling processes (claim, label, commit: two UI windows whose people answer ``ui_rate``
    pairs a second, faster than people do), a scripted writer at ``rate`` labels a second, and a trainer
    process (every 0.5 s it reads every label and asks 20 new queries) on one store for ``seconds``
    (after all four have opened it). Returns the labels acknowledged by each, their errors ("database
    is locked" among them) and the store's problems."""
    procs, logs = [], []
    roles = [("writer", "ui-1", ui_rate), ("writer", "ui-2", ui_rate), ("writer", "burst", rate),
             ("trainer", "trainer", 0.0)]
    for role, name, r in roles:
        log = Path(f"{path}.{name}.log")
        with log.open("w") as out:
            procs.append(subprocess.Popen([sys.executable, __file__, role, str(path), name, str(r)],
                                          stdout=out, stderr=subprocess.STDOUT))
        logs.append(log)
    while not all(log.read_text().startswith("ready") for log in logs) and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    time.sleep(seconds)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    acknowledged: dict[str, int] = {}
    acked: set[int] = set()
    errors: list[str] = []
    for (_, name, _), log in zip(roles, logs):
        lines = log.read_text().split("\n")[:-1]
        log.unlink()
        ids = {int(line.split()[1]) for line in lines if line.startswith("ack ")}
        acknowledged[name] = len(ids)
        acked |= ids
        errors += [f"{name}: {line}" for line in lines if not line.startswith(("ack ", "ready", "read "))]
    return {"seconds": seconds, "acknowledged": acknowledged, "errors": errors, "problems": check_store(path, acked)}


def _writer(path: str, labeler: str, rate: float = 0.0) -> None:
    store = PreferenceStore(path, create=False)
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
        except sqlite3.Error as exc:
            print(f"error {type(exc).__name__}: {exc}", flush=True)
            continue
        print(f"ack {comparison.id}", flush=True)  # only after the commit has returned
        done += 1


def _trainer(path: str) -> None:
    """The trainer's side of the store: read every label, ask a batch of new queries, twice a second."""
    store = PreferenceStore(path, create=False)
    print("ready", flush=True)
    rng = np.random.default_rng()
    clip_ids = store.clip_ids()
    while True:
        try:
            n = len(store.comparisons("labeled"))
            store.add_queries([tuple(int(v) for v in rng.choice(clip_ids, 2, replace=False)) for _ in range(20)],
                              source="drill")
            print(f"read {n}", flush=True)
        except sqlite3.Error as exc:
            print(f"error {type(exc).__name__}: {exc}", flush=True)
        time.sleep(0.5)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "writer":
        _writer(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)
    elif len(sys.argv) >= 3 and sys.argv[1] == "trainer":
        _trainer(sys.argv[2])
    else:
        sys.exit("usage: python experiments/drills.py writer STORE LABELER [RATE] | trainer STORE")
