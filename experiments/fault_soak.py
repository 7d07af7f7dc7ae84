"""The long fault drill: many SIGKILLs of a labeling writer, a minute's burst of writers on one store,
and a training run killed again and again and resumed each time, against an uninterrupted run.

    python experiments/fault_soak.py --writer-kills 200 --burst-seconds 60 --train-kills 3 --env cartpole

Writes ``runs/fault_soak/report.md`` and prints it. ``--store URL [URL]`` runs the writer and burst
drills on PostgreSQL stores (empty ones, as ``experiments/pg_server.py --stores 2`` prints; with one
URL the burst follows the kills on the same store) rather than on SQLite files in ``--out``;
``--train-kills 0`` leaves out the training runs:

    python experiments/fault_soak.py --store URL1 URL2 --train-kills 0

The uninterrupted run of each seed is made by ``harness.run_all``, cached by code version; the drills
and the killed runs are made anew each time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from harness import Run, markdown_table, parser, run_all

from drills import burst_drill, check_store, kill_writer_drill, make_store


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefrl.cli", "train", *args]


def plain_run(run: Run, run_dir: str) -> dict:
    """The job of the uninterrupted run: ``prefrl train`` started from the command line, as the killed
    run is, and left alone."""
    subprocess.run(train_cmd(run.env, "--seed", str(run.seed), "--run-dir", run_dir, "--no-progress"), check=True,
                   capture_output=True)
    return json.loads((Path(run_dir) / "summary.json").read_text())


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
    p = parser(__doc__, out="runs/fault_soak", seeds=[0], workers=None)
    p.add_argument("--writer-kills", type=int, default=200)
    p.add_argument("--burst-seconds", type=float, default=60.0)
    p.add_argument("--burst-rate", type=float, default=100.0)
    p.add_argument("--train-kills", type=int, default=3)
    p.add_argument("--env", default="cartpole")
    p.add_argument("--store", nargs="+", metavar="URL", default=None,
                   help="postgresql:// URLs of empty stores for the writer and the burst drill (one URL: both on it)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []

    stores = (args.store * 2)[:2] if args.store else [out / "writer.sqlite", out / "burst.sqlite"]
    store = stores[0]
    if not args.store:
        store.unlink(missing_ok=True)
    make_store(store, 100_000).close()
    t = time.time()
    w = kill_writer_drill(store, kills=args.writer_kills, seed=0, max_wait=1.0)
    lines.append(f"- writer SIGKILLed {w['kills']} times at random moments (0–1 s after it opened the store): "
                 f"{w['acknowledged']:,} labels acknowledged, writer errors {len(w['errors'])} {w['errors'][:3]}, "
                 f"problems: {w['problems'] or 'none'} "
                 f"({time.time() - t:.0f} s)")
    print(lines[-1], flush=True)

    store = stores[1]
    if not args.store:
        store.unlink(missing_ok=True)
    t = time.time()
    make_store(store, 100_000).close()
    print(f"made the burst's store ({time.time() - t:.0f} s)", flush=True)
    b = burst_drill(store, seconds=args.burst_seconds, rate=args.burst_rate)
    lines.append(f"- burst for {b['seconds']:.0f} s: labels acknowledged {b['acknowledged']} "
                 f"({sum(b['acknowledged'].values()) / b['seconds']:.1f} a second in all), errors "
                 f"{len(b['errors'])} {b['errors'][:3]}, store problems: {b['problems'] or 'none'}")
    print(lines[-1], flush=True)
    if args.train_kills == 0:  # the drills only
        (out / "report.md").write_text("\n".join(lines))
        return

    # threads=None: the command-line run takes torch's default, as the killed one does
    plains = run_all([Run("plain", args.env, seed, threads=None) for seed in args.seeds], out, workers=1, job=plain_run)
    rows = []
    for seed, plain in zip(args.seeds, plains):
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
        rows.append([seed, f"{plain['true_return_mean']:.1f} ± {plain['true_return_std']:.1f}",
                     f"{resumed.get('true_return_mean', float('nan')):.1f} ± "
                     f"{resumed.get('true_return_std', float('nan')):.1f}",
                     args.train_kills, resumed.get("labels_used"), f"{pairs[0]} of {pairs[1]}", problems or "none"])
    lines += ["", markdown_table(["seed", "uninterrupted true return", "killed and resumed", "kills",
                                  "labels (resumed run)", "distinct pairs", "problems"], rows)]
    report = "\n".join(lines)
    (out / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
