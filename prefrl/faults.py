"""Fault drills for the store: a labeling writer that acknowledges each label only after its commit,
killed with SIGKILL at random moments; and a burst of writers on one store.

Used by ``tests/test_faults.py`` (short) and ``experiments/fault_soak.py`` (long). Run as a module,
it is the writer process:

    python -m prefrl.faults writer STORE LABELER [RATE]

which claims pending comparisons one at a time, labels each, and prints ``ack <id>`` after the commit
returns (RATE labels per second at most; 0: as fast as it can).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .clips import Clip
from .store import PreferenceStore

__all__ = ["make_store", "kill_writer_drill", "check_store"]


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
            proc = subprocess.Popen([sys.executable, "-m", "prefrl.faults", "writer", str(path), f"w{k}"], stdout=out)
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


def _writer(path: str, labeler: str, rate: float = 0.0) -> None:
    store = PreferenceStore(path, create=False)
    print("ready", flush=True)
    rng = np.random.default_rng()
    while True:
        comparison = store.claim(labeler)
        if comparison is None:
            time.sleep(0.01)
            continue
        store.record_labels([(comparison.id, float(rng.choice([0.0, 0.5, 1.0])))], labeler=labeler)
        print(f"ack {comparison.id}", flush=True)  # only after the commit has returned
        if rate:
            time.sleep(1.0 / rate)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "writer":
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _writer(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)
    else:
        sys.exit("usage: python -m prefrl.faults writer STORE LABELER [RATE]")
