"""The long fault drill: many SIGKILLs of a labeling writer, a minute's burst of writers on one store,
and a training run killed again and again and resumed each time, against an uninterrupted run.

    python experiments/fault_soak.py --writer-kills 200 --burst-seconds 60 --train-kills 3 --env cartpole

Writes ``runs/fault_soak/report.md`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from prefrl.faults import burst_drill, check_store, kill_writer_drill, make_store


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefrl.cli", "train", *args]


def killed_and_resumed(env: str, seed: int, kills: int, run: Path, rng: np.random.Generator,
                       max_wait: float) -> tuple[dict, list[str]]:
    """Start a run, SIGKILL it ``kills`` times at random moments (each after its latest checkpoint
    exists, a random 0..max_wait s later), resuming after each; then let it finish."""
    problems = []
    first = True
    for k in range(kills):
        cmd = train_cmd(env, "--seed", str(seed), "--run-dir", str(run), "--no-progress") if first else \
            train_cmd("--resume", str(run))
        first = False
        seen = set((run / "checkpoints").glob("policy_*_steps.zip"))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None and not set((run / "checkpoints").glob("policy_*_steps.zip")) - seen:
            time.sleep(0.2)
        time.sleep(rng.uniform(0, max_wait))
        if proc.poll() is not None:
            problems.append(f"kill {k}: the run ended before the kill (rc {proc.returncode}): {proc.stderr.read()[-300:]}")
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        problems += [f"kill {k}: {p}" for p in check_store(run / "store.sqlite", set())]
        print(f"killed the run ({k + 1} of {kills})", flush=True)
    done = subprocess.run(train_cmd("--resume", str(run)), capture_output=True, text=True)
    if done.returncode:
        problems.append(f"final resume failed: {done.stderr.strip()[-300:]}")
        return {}, problems
    return json.loads((run / "summary.json").read_text()), problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writer-kills", type=int, default=200)
    parser.add_argument("--burst-seconds", type=float, default=60.0)
    parser.add_argument("--burst-rate", type=float, default=100.0)
    parser.add_argument("--train-kills", type=int, default=3)
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/fault_soak")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []

    store = out / "writer.sqlite"
    store.unlink(missing_ok=True)
    make_store(store, 100_000).close()
    t = time.time()
    w = kill_writer_drill(store, kills=args.writer_kills, seed=0, max_wait=1.0)
    lines.append(f"- writer SIGKILLed {w['kills']} times at random moments (0–1 s after it opened the store): "
                 f"{w['acknowledged']:,} labels acknowledged, problems: {w['problems'] or 'none'} "
                 f"({time.time() - t:.0f} s)")

    store = out / "burst.sqlite"
    store.unlink(missing_ok=True)
    make_store(store, 100_000).close()
    b = burst_drill(store, seconds=args.burst_seconds, rate=args.burst_rate)
    lines.append(f"- burst for {b['seconds']:.0f} s: labels acknowledged {b['acknowledged']}, errors "
                 f"{len(b['errors'])} {b['errors'][:3]}, store problems: {b['problems'] or 'none'}")

    lines += ["", "| seed | uninterrupted true return | killed and resumed | kills | labels (resumed run) | "
              "distinct pairs | problems |", "|---|---|---|---|---|---|---|"]
    for seed in args.seeds:
        plain_dir = out / f"{args.env}-plain-s{seed}"
        if not (plain_dir / "summary.json").exists():
            subprocess.run(train_cmd(args.env, "--seed", str(seed), "--run-dir", str(plain_dir), "--no-progress"),
                           check=True, capture_output=True)
        plain = json.loads((plain_dir / "summary.json").read_text())
        run = out / f"{args.env}-killed-s{seed}"
        if run.exists():
            import shutil

            shutil.rmtree(run)
        resumed, problems = killed_and_resumed(args.env, seed, args.train_kills, run, rng, max_wait=20.0)
        import sqlite3

        db = sqlite3.connect(run / "store.sqlite")
        pairs = db.execute("SELECT COUNT(DISTINCT MIN(left_id, right_id) || '-' || MAX(left_id, right_id)), "
                           "COUNT(*) FROM comparisons").fetchone()
        db.close()
        lines.append(f"| {seed} | {plain['true_return_mean']:.1f} ± {plain['true_return_std']:.1f} | "
                     f"{resumed.get('true_return_mean', float('nan')):.1f} ± {resumed.get('true_return_std', float('nan')):.1f} | "
                     f"{args.train_kills} | {resumed.get('labels_used')} | {pairs[0]} of {pairs[1]} | "
                     f"{problems or 'none'} |")
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
