"""Final true return of configurations of `prefrl train` over seeds, as one markdown table per env.

    python experiments/sweep.py --env cartpole --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --configs "default:" "60 epochs:reward_epochs=60" "random queries:query=random"

A configuration is ``NAME:key=value,...``: keys of ``TrainConfig`` (``labels``, ``query``,
``pessimism``, ``reward``, ...) or of the env's preset (``reward_epochs``, ``clip_length``, ...).
Every configuration runs on every env of ``--envs`` with every seed (``harness.grid``), cached by
code version (see ``harness.py``). Each row gives how many seeds reached ``--threshold`` (default:
475 on cartpole), the mean, every seed's value and the mean wall time, over the runs that finished: a
run that failed reads ``failed`` in its seed's place (a rerun makes it again). ``--ray ADDRESS`` makes
the runs on a Ray cluster (see ``harness.run_all``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from harness import count_at_least, grid, markdown_table, parse_config, parser, run_all

THRESHOLDS = {"cartpole": 475.0}


def render(results: list[dict], env: str, configs: list[str], seeds: list[int], threshold: float | None) -> str:
    """One env's table: a row per configuration, its seeds in the order given; the count, mean and
    wall time over the runs that finished, a failed run ``failed`` in its seed's place."""
    rows = []
    for name in configs:
        mine = [r for r in results if r["label"] == name and r["env"] == env]
        made = [r for r in mine if "failed" not in r]
        values = [r["true_return_mean"] for r in made]
        failed = f"{len(mine) - len(made)} failed" if len(made) < len(mine) else ""
        count = count_at_least(values, threshold) if threshold is not None else ""
        rows.append([name, ", ".join(c for c in (count, failed) if c),
                     f"{np.mean(values):.1f}" if made else "-",
                     ", ".join("failed" if "failed" in r else f"{r['true_return_mean']:.0f}" for r in mine),
                     f"{np.mean([r['wall_seconds'] for r in made]):.0f}" if made else "-"])
    return markdown_table(["configuration", f"≥ {threshold:g}" if threshold is not None else "",
                           "mean", f"per seed ({', '.join(map(str, seeds))})", "wall s"], rows)


def main() -> None:
    p = parser(__doc__, out="runs/sweep", seeds=list(range(10)), envs=["cartpole"])
    p.add_argument("--configs", nargs="+", default=["default:"], help="NAME:key=value,... (see above)")
    p.add_argument("--threshold", type=float, default=None, help="the return that counts as solved")
    args = p.parse_args()
    configs = dict(parse_config(c) for c in args.configs)
    results = run_all(grid(args.envs, args.seeds, configs), args.out, args.workers, ray=args.ray)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for env in args.envs:
        threshold = args.threshold if args.threshold is not None else THRESHOLDS.get(env)
        table = render(results, env, list(configs), args.seeds, threshold)
        (Path(args.out) / f"{env.replace('/', '-')}.md").write_text(table)
        print(f"{env}:\n\n{table}")


if __name__ == "__main__":
    main()
