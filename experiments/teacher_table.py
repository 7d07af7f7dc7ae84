"""Final true return for each simulated teacher and each query strategy, as a markdown table.

    python experiments/teacher_table.py --envs cartpole pendulum --seeds 0 1 2 --labels 200

Two one-way sweeps around the default (oracle teacher, disagreement queries), each over seeds:
B-Pref's six teachers with disagreement queries, and the four query strategies with the oracle;
plus PPO on the true reward for scale. Extra configurations come with ``--extra NAME:key=value,...``
(keys of ``TrainConfig`` or of the preset, e.g. ``--extra k3:rank_size=3``). Runs are cached by code
version (``harness.py``): a rerun of the same code resumes a killed sweep, and a rerun after a change
of code trains again. ``--workers 2`` runs two at a time (one thread each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from harness import grid, markdown_table, parse_config, parser, run_all

TEACHERS = ["oracle", "noisy", "myopic", "mistake", "skip", "equal"]
QUERIES = ["random", "disagreement", "entropy", "optimistic"]


def configs(extra: list[str]) -> dict[str, dict]:
    out = {"true reward": {"reward": "true"}}
    for teacher in TEACHERS:
        out[f"teacher {teacher}"] = {"teacher": teacher, "query": "disagreement"}
    for query in QUERIES:
        if query != "disagreement":
            out[f"query {query}"] = {"teacher": "oracle", "query": query}
    out.update(parse_config(item) for item in extra)
    return out


def main() -> None:
    p = parser(__doc__, out="runs/teacher_table", seeds=[0, 1, 2], envs=["cartpole", "pendulum"])
    p.add_argument("--labels", type=int, default=200)
    p.add_argument("--steps", type=int, default=None, help="PPO steps (default: the preset's)")
    p.add_argument("--only", nargs="*", default=None, help="run only these configuration names")
    p.add_argument("--extra", nargs="*", default=[], help="more configurations, NAME:key=value,...")
    args = p.parse_args()
    table = configs(args.extra)
    if args.only:
        table = {k: v for k, v in table.items() if k in args.only}
    budget = {"labels": args.labels, "steps": args.steps}
    results = [{**r, "config": r["label"]} for r in
               run_all(grid(args.envs, args.seeds, {k: {**v, **budget} for k, v in table.items()}), args.out,
                       args.workers, ray=args.ray)]
    report = render(results, table, args)
    Path(args.out, "table.md").write_text(report)
    print(report)


def render(results: list[dict], table: dict, args) -> str:
    by = {(r["config"], r["env"], r["seed"]): r for r in results}
    rows = []
    for name in table:
        cells = []
        for env in args.envs:
            values = [by[(name, env, s)]["true_return_mean"] for s in args.seeds]
            labels = [by[(name, env, s)]["labels_used"] for s in args.seeds]
            cell = f"**{np.mean(values):.1f}** ± {np.std(values):.1f} ({', '.join(f'{v:.0f}' for v in values)})"
            if name != "true reward" and min(labels) < args.labels:
                cell += f", labels {min(labels)}–{max(labels)}"
            cells.append(cell)
        rows.append([name, *cells])
    lines = [f"Final true return (mean ± std over seeds {', '.join(map(str, args.seeds))}; "
             f"{args.labels} queries; each seed's figure is the mean of the preset's evaluation episodes).", "",
             markdown_table(["configuration", *args.envs], rows).rstrip("\n")]
    if "teacher oracle" in table and "query random" in table:
        lines += ["", "Disagreement against random queries (oracle teacher), paired by seed:", ""]
        for env in args.envs:
            dis = np.array([by[("teacher oracle", env, s)]["true_return_mean"] for s in args.seeds])
            rnd = np.array([by[("query random", env, s)]["true_return_mean"] for s in args.seeds])
            diff = dis - rnd
            lines.append(f"- {env}: disagreement {dis.mean():.1f}, random {rnd.mean():.1f}; difference "
                         f"{diff.mean():+.1f} (per seed {', '.join(f'{d:+.0f}' for d in diff)}; "
                         f"disagreement ahead on {int((diff > 0).sum())} of {len(diff)} seeds)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
