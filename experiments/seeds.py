"""Final true return of ``prefrl train`` over several seeds, learned and/or true reward, as markdown.

    python experiments/seeds.py --env pendulum --seeds 0 1 2 --labels 200 --steps 150000
    python experiments/seeds.py --env acrobot --seeds 0 --rewards learned true
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from prefrl.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rewards", nargs="+", default=["learned"], choices=["learned", "true"])
    parser.add_argument("--labels", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--query", default="disagreement")
    parser.add_argument("--out", default="runs/seeds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for reward in args.rewards:
        for seed in args.seeds:
            run_dir = Path(args.out) / f"{args.env}-{reward}-{args.query}-s{seed}"
            s = train(TrainConfig(args.env, reward=reward, labels=args.labels, steps=args.steps, seed=seed,
                                  query=args.query, run_dir=str(run_dir), progress_bar=False))
            rows.append(s)
            print(json.dumps(s), flush=True)
    lines = ["| env | reward | seed | steps | labels | true return | wall s | steps/s |", "|---|---|---|---|---|---|---|---|"]
    for s in rows:
        lines.append(f"| {s['env']} | {s['reward']} | {s['seed']} | {s['timesteps']} | {s['labels_used']} | "
                     f"{s['true_return_mean']:.1f} ± {s['true_return_std']:.1f} | {s['wall_seconds']} | {s['steps_per_second']} |")
    for reward in args.rewards:
        means = [s["true_return_mean"] for s in rows if s["reward"] == reward]
        lines.append(f"\n{args.env} {reward}: mean over seeds {np.mean(means):.1f}, min {np.min(means):.1f}")
    table = "\n".join(lines)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.env}-{'-'.join(args.rewards)}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
