"""Final true return of configurations of `prefrl train` over seeds, as one markdown table per env.

    python experiments/sweep.py --env cartpole --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --configs "default:" "60 epochs:reward_epochs=60" "random queries:query=random"

A configuration is ``NAME:key=value,...``: keys of ``TrainConfig`` (``labels``, ``query``,
``pessimism``, ``reward``, ...) or of the env's preset (``reward_epochs``, ``clip_length``, ...).
Every configuration runs on every env of ``--envs`` with every seed (``harness.grid``), cached by
code version (see ``harness.py``). Each row gives how many seeds reached ``--threshold`` (default:
475 on cartpole), the mean, every seed's value and the mean wall time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from harness import count_at_least, grid, markdown_table, parse_config, parser, run_all

THRESHOLDS = {"cartpole": 475.0}


def render(results: list[dict], env: str, configs: list[str], seeds: list[int], threshold: float | None) -> str:
    """One env's table: a row per configuration, its seeds in the order given."""
    rows = []
    for name in configs:
        mine = [r for r in results if r["label"] == name and r["env"] == env]
        values = [r["true_return_mean"] for r in mine]
        rows.append([name, count_at_least(values, threshold) if threshold is not None else "",
                     f"{np.mean(values):.1f}", ", ".join(f"{v:.0f}" for v in values),
                     f"{np.mean([r['wall_seconds'] for r in mine]):.0f}"])
    return markdown_table(["configuration", f"≥ {threshold:g}" if threshold is not None else "",
                           "mean", f"per seed ({', '.join(map(str, seeds))})", "wall s"], rows)


def main() -> None:
    p = parser(__doc__, out="runs/sweep", seeds=list(range(10)), envs=["cartpole"])
    p.add_argument("--configs", nargs="+", default=["default:"], help="NAME:key=value,... (see above)")
    p.add_argument("--threshold", type=float, default=None, help="the return that counts as solved")
    args = p.parse_args()
    configs = dict(parse_config(c) for c in args.configs)
    results = run_all(grid(args.envs, args.seeds, configs), args.out, args.workers)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for env in args.envs:
        threshold = args.threshold if args.threshold is not None else THRESHOLDS.get(env)
        table = render(results, env, list(configs), args.seeds, threshold)
        (Path(args.out) / f"{env.replace('/', '-')}.md").write_text(table)
        print(f"{env}:\n\n{table}")


if __name__ == "__main__":
    main()
