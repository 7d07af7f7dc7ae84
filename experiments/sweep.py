"""Final true return of configurations of `prefrl train` over seeds, as one markdown table.

    python experiments/sweep.py --env cartpole --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --configs "default:" "60 epochs:reward_epochs=60" "random queries:query=random"

A configuration is ``NAME:key=value,...``: keys of ``TrainConfig`` (``labels``, ``query``,
``pessimism``, ``reward``, ...) or of the env's preset (``reward_epochs``, ``clip_length``, ...).
Runs are cached by code version (see ``harness.py``). Each row gives how many seeds reached
``--threshold`` (default: 475 on cartpole), the mean, every seed's value and the mean wall time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from harness import Run, count_at_least, markdown_table, parse_config, run_all

THRESHOLDS = {"cartpole": 475.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--configs", nargs="+", default=["default:"])
    parser.add_argument("--threshold", type=float, default=None, help="the return that counts as solved")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="runs/sweep")
    args = parser.parse_args()
    configs = dict(parse_config(c) for c in args.configs)
    runs = [Run(name, args.env, seed, settings) for name, settings in configs.items() for seed in args.seeds]
    results = run_all(runs, args.out, args.workers)
    threshold = args.threshold if args.threshold is not None else THRESHOLDS.get(args.env)
    rows = []
    for name in configs:
        mine = [r for r in results if r["label"] == name]
        values = [r["true_return_mean"] for r in mine]
        rows.append([name, count_at_least(values, threshold) if threshold is not None else "",
                     f"{np.mean(values):.1f}", ", ".join(f"{v:.0f}" for v in values),
                     f"{np.mean([r['wall_seconds'] for r in mine]):.0f}"])
    table = markdown_table(["configuration", f"≥ {threshold:g}" if threshold is not None else "",
                            "mean", f"per seed ({', '.join(map(str, args.seeds))})", "wall s"], rows)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.env}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
