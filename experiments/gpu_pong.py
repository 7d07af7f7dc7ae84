"""Learned-reward against true-reward PPO on one Atari game, side by side, for a time budget.

The GPU run of issue 16: both runs start together on one machine (each with half its cores for
the C++ vector env and the same GPU), play as many steps as ``--minutes`` allow (``prefrl train
--max-minutes``: the labels asked and the fit before RL count against the budget), and are then
evaluated. If either run fails, the other is stopped at once, so a broken run costs seconds of a
lent machine, not the whole budget.

Writes into ``--out`` (at most 8 files, as a device run brings back): ``gpu_pong.json`` (each run's
summary, its steps/s inside ``learn``, the final score, the learned/true ratios), each run's
``metrics.csv`` (true score against env steps, labels, the reward model's validation accuracy)
and each run's log. The run directories go to ``--work`` (checkpoints and stores stay there).

On a lent machine, where the project is not installed, its two mapped packages are linked into
place first (``pyproject.toml`` maps ``prefrl.envs`` to ``envs/``):

    ln -s $PWD/envs prefrl/envs && ln -s $PWD/labeling_ui prefrl/labeling_ui
    python experiments/gpu_pong.py --out $OUT --work /tmp/gp --minutes 6.5 --labels 2000 --initial-labels 500 \\
        --set vector_env=true fit_async=true n_envs=16 vector_threads=8 reward_epochs=3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="pong")
    parser.add_argument("--minutes", type=float, default=6.5, help="each run's budget (prefrl train --max-minutes)")
    parser.add_argument("--steps", type=int, default=5_000_000,
                        help="the runs' nominal length: PPO's learning-rate decay and the label schedule follow it")
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--initial-labels", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/gpu_pong")
    parser.add_argument("--work", default=None, help="where the run directories go (default: OUT/runs)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)

    procs, logs, dirs = {}, {}, {}
    for reward in ("true", "learned"):
        dirs[reward] = work / f"{args.env}-{reward}-s{args.seed}"
        cmd = [sys.executable, "-m", "prefrl", "train", args.env, "--reward", reward, "--steps", str(args.steps),
               "--seed", str(args.seed), "--device", args.device, "--max-minutes", str(args.minutes),
               "--run-dir", str(dirs[reward]), "--no-progress"]
        if reward == "learned":
            cmd += ["--labels", str(args.labels), "--initial-labels", str(args.initial_labels)]
        for item in args.overrides:
            cmd += ["--set", item]
        logs[reward] = out / f"{reward}.log"
        procs[reward] = subprocess.Popen(cmd, stdout=logs[reward].open("w"), stderr=subprocess.STDOUT)
        print(" ".join(cmd), flush=True)

    start = time.time()
    failed = None
    while any(p.poll() is None for p in procs.values()):
        for reward, p in procs.items():
            if p.poll() not in (None, 0):
                failed = reward
        if failed:
            for p in procs.values():
                if p.poll() is None:
                    p.terminate()
            break
        time.sleep(2)
    for p in procs.values():
        p.wait()
    result: dict = {"env": args.env, "minutes": args.minutes, "steps": args.steps, "labels": args.labels,
                    "initial_labels": args.initial_labels, "seed": args.seed, "overrides": args.overrides,
                    "cpu_cores": os.cpu_count(), "elapsed_seconds": round(time.time() - start, 1),
                    "returncodes": {r: p.returncode for r, p in procs.items()}}
    for reward, run in dirs.items():
        summary = run / "summary.json"
        if summary.exists():
            result[reward] = json.loads(summary.read_text())
        if (run / "metrics.csv").exists():
            shutil.copy(run / "metrics.csv", out / f"{reward}_metrics.csv")
    if "true" in result and "learned" in result:
        t, lr = result["true"], result["learned"]
        result["steps_per_second_ratio"] = round(lr["steps_per_second"] / t["steps_per_second"], 3)
        result["steps_ratio"] = round(lr["timesteps"] / t["timesteps"], 3)
    (out / "gpu_pong.json").write_text(json.dumps(result, indent=2))
    for reward in ("true", "learned"):
        s = result.get(reward, {})
        print(f"{reward}: rc {procs[reward].returncode}, {s.get('timesteps')} steps, {s.get('steps_per_second')} "
              f"steps/s, final score {s.get('true_return_mean')}, labels {s.get('labels_used')}", flush=True)
    if failed:
        print(f"the {failed} run failed: see {logs[failed]}", file=sys.stderr)
        for line in logs[failed].read_text().splitlines()[-30:]:
            print(line, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
