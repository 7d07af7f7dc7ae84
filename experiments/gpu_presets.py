"""True-reward PPO throughput of candidate GPU presets on one Atari game, one configuration at a time.

Issue 16 asks for the GPU presets (envs, rollout and batch sizes) to be chosen by measurement. A lent
GPU comes for 15 minutes a session, too short to run each candidate to a learning curve, so this
script measures what a short run can: each configuration plays true-reward PPO alone on the whole
machine for ``--seconds`` (``prefrl train --max-minutes``), one after another, and reports its PPO
steps/s inside ``learn``, the env steps reached and the gradient steps per 1,000 env steps (PPO's
``n_epochs * n_steps * n_envs / batch_size`` per rollout, the knob that trades sample efficiency for
speed). A configuration that would not finish inside ``--budget`` seconds of the script's start is
skipped and says so, so a device call never runs past its limit.

A configuration is ``NAME:key=value,...``. Keys of PPO (``n_steps``, ``batch_size``, ``n_epochs``,
``learning_rate``, ...) go to ``prefrl train --hyperparams``; every other key is a preset field for
``--set`` (``n_envs``, ``vector_threads``, ``vector_env``, ...). On a lent machine, where the
project is not installed, link its two mapped packages first (as for ``gpu_pong.py``):

    ln -s $PWD/envs prefrl/envs && ln -s $PWD/labeling_ui prefrl/labeling_ui
    python experiments/gpu_presets.py --out $OUT --work /tmp/gq --seconds 75 --budget 480 --configs \\
        "16x128:n_envs=16,vector_threads=8" "32x128:n_envs=32,vector_threads=16" \\
        "64x128 b1024:n_envs=64,vector_threads=16,batch_size=1024" "32x256 b1024:n_envs=32,vector_threads=16,n_steps=256,batch_size=1024"

Writes ``gpu_presets.json`` (every configuration's command, summary figures and return code) and each
run's log into ``--out``; the run directories go to ``--work``. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PPO_KEYS = {"n_steps", "batch_size", "n_epochs", "learning_rate", "clip_range", "ent_coef", "vf_coef",
            "gae_lambda", "gamma", "max_grad_norm", "normalize_advantage", "target_kl"}
ATARI_PPO = {"n_envs": 8, "n_steps": 128, "batch_size": 256, "n_epochs": 4}  # prefrl.presets.ATARI_PRESET


def parse(text: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """``"NAME:k=v,..."`` -> (NAME, preset fields for ``--set``, PPO keys for ``--hyperparams``)."""
    name, sep, params = text.partition(":")
    if not sep or not name:
        raise SystemExit(f"--configs {text!r}: write NAME:key=value,... (e.g. \"32 envs:n_envs=32\")")
    sets: dict[str, str] = {}
    hyper: dict[str, str] = {}
    for item in (i for i in params.split(",") if i):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"--configs {text!r}: {item!r} is not key=value")
        (hyper if key in PPO_KEYS else sets)[key] = value
    return name, sets, hyper


def grad_steps_per_1k(sets: dict[str, str], hyper: dict[str, str], gpu_envs: int) -> float:
    """PPO's gradient steps per 1,000 env steps under these settings (the Atari preset's where unset)."""
    n_envs = int(sets.get("n_envs", gpu_envs))
    n_steps = int(hyper.get("n_steps", ATARI_PPO["n_steps"]))
    batch = int(hyper.get("batch_size", ATARI_PPO["batch_size"]))
    epochs = int(hyper.get("n_epochs", ATARI_PPO["n_epochs"]))
    rollout = n_envs * n_steps
    return round(1000 * epochs * -(-rollout // batch) / rollout, 2)


def last_returns(metrics: Path, count: int = 10) -> float | None:
    """The mean of the last ``count`` training-episode true returns in a run's ``metrics.csv``."""
    if not metrics.exists():
        return None
    lines = metrics.read_text().splitlines()
    if not lines:
        return None
    col = lines[0].split(",").index("true_episode_return")
    values = [float(c[col]) for c in (line.split(",") for line in lines[1:]) if len(c) > col and c[col]]
    return round(sum(values[-count:]) / len(values[-count:]), 2) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="pong")
    parser.add_argument("--configs", nargs="+", required=True, metavar="NAME:key=value,...")
    parser.add_argument("--seconds", type=float, default=75.0, help="each configuration's budget, all in")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds from the start after which no configuration starts that would not end inside it")
    parser.add_argument("--steps", type=int, default=5_000_000,
                        help="the runs' nominal length: PPO's learning-rate and clip decay follow it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--gpu-envs", type=int, default=16,
                        help="n_envs of the preset when a configuration leaves it unset (ATARI_GPU's on CUDA)")
    parser.add_argument("--out", default="runs/gpu_presets")
    parser.add_argument("--work", default=None, help="where the run directories go (default: OUT/runs)")
    args = parser.parse_args()
    configs = [parse(text) for text in args.configs]
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)

    start = time.time()
    results = []
    for index, (name, sets, hyper) in enumerate(configs):
        row: dict = {"name": name, "set": sets, "hyperparams": hyper,
                     "grad_steps_per_1k": grad_steps_per_1k(sets, hyper, args.gpu_envs)}
        results.append(row)
        # a run takes longer than its budget (start-up, the final evaluation): the last run's excess, 30 s at first
        excess = max([30.0] + [r["wall_seconds"] - args.seconds for r in results if "wall_seconds" in r])
        if time.time() - start + args.seconds + excess > args.budget:
            row["skipped"] = f"would end past --budget {args.budget:g} s"
            continue
        run = work / f"{index}-{args.env}"
        cmd = [sys.executable, "-m", "prefrl", "train", args.env, "--reward", "true", "--steps", str(args.steps),
               "--seed", str(args.seed), "--device", args.device, "--max-minutes", f"{args.seconds / 60:.4f}",
               "--run-dir", str(run), "--no-progress", "--set", "eval_episodes=1"]
        for key, value in sets.items():
            cmd += ["--set", f"{key}={value}"]
        if hyper:
            cmd += ["--hyperparams", *(f"{k}={v}" for k, v in hyper.items())]
        row["command"] = " ".join(cmd)
        print(row["command"], flush=True)
        log = out / f"{index}.log"
        began = time.time()
        with log.open("w") as handle:
            rc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT).returncode
        row.update(returncode=rc, wall_seconds=round(time.time() - began, 1))
        summary = run / "summary.json"
        if rc == 0 and summary.exists():
            s = json.loads(summary.read_text())
            row.update(timesteps=s.get("timesteps"), steps_per_second=s.get("steps_per_second"),
                       last_training_returns=last_returns(run / "metrics.csv"),
                       final_score=s.get("true_return_mean"))
        else:
            row["log_tail"] = log.read_text().splitlines()[-15:]
    (out / "gpu_presets.json").write_text(json.dumps(
        {"env": args.env, "seconds": args.seconds, "steps": args.steps, "seed": args.seed,
         "cpu_cores": os.cpu_count(), "configs": results}, indent=2))

    print(f"\n{args.env}, true reward, {args.seconds:g} s a configuration, {os.cpu_count()} CPU cores\n")
    print("| configuration | PPO steps/s in `learn` | env steps | gradient steps / 1k env steps "
          "| last 10 training returns |")
    print("|---|---|---|---|---|")
    for row in results:
        if "skipped" in row or row.get("returncode"):
            why = row.get("skipped") or f"failed (rc {row['returncode']}; see its log)"
            print(f"| {row['name']} | {why} | | {row['grad_steps_per_1k']} | |")
        else:
            print(f"| {row['name']} | {row.get('steps_per_second')} | {row.get('timesteps')} "
                  f"| {row['grad_steps_per_1k']} | {row.get('last_training_returns')} |")
    if any(row.get("returncode") for row in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
