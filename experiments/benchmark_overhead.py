"""Steps/s of learned-reward PPO against true-reward PPO, per configuration, as one markdown table.

Reads top to bottom: the options, the two runs of each configuration, the ratio. Both runs of a
configuration use the same preset, settings, steps and seed, and run one after the other with every
core (nothing else of this script beside them); the learned run's time includes everything the
preference loop adds inside PPO's ``learn`` (recording clips, asking labels, refitting the ensemble,
relabeling each rollout).

    python experiments/benchmark_overhead.py --env cartpole
    python experiments/benchmark_overhead.py --env pong --steps 100000 \\
        --configs "41, the paper's rate:labels=541,initial_labels=500" "271, after 270 before RL:labels=541"

A configuration is ``NAME:key=value,...`` (keys of ``TrainConfig`` or of the preset; ``default:``
is the preset). The overhead on Atari is mostly refitting the reward CNN, so it depends on how many
labels arrive per env step. The pong command asks them at the paper's rate: 500 on random-policy
clips before RL (not inside ``learn``), then 5,000 over 50M steps at a rate ∝ 5e6/(T + 5e6), of which
the first 100k steps get 5000·ln(1.02)/ln(11) ≈ 41; and at a higher one. The last column splits the
loop's time by stage (``loop_seconds`` of the learned run's summary), and the next the asynchronous
fitter's worker's (``worker_seconds``: asking, fitting, held, and overlapping PPO's updates), then
how the queries were picked (``picks``: rounds that compared the clips' kept member returns, rounds
that scored every candidate again, and the clips those scored), then the CPU seconds each run's
process used inside ``learn`` (``cpu_seconds``), true-reward's over learned-reward's, and of the
learned run's those of the reward's background scorer and of the worker. Where true-reward PPO
keeps every core busy, the CPU the preference loop adds is the steps/s it costs, and that ratio
barely moves with the machine's other load, which the steps/s ratio does.

With several ``--seeds`` each seed is one more pair, run back to back (every configuration of seed 0
first, then of seed 1, ...), and a second table gives each configuration over its pairs: one pair's
ratio can be far off on a shared machine, where identical true-reward runs have differed by a
quarter.

The runs are cached by code version (``harness.py``): a rerun of the same code prints the figures it
measured then; give another ``--out`` to measure again.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from harness import grid, markdown_table, parse_config, parser, run_all


def render(results: list[dict], envs: list[str], seeds: list[int], configs: list[str]) -> str:
    """A row per env, configuration and seed: learned-reward steps/s over true-reward steps/s."""
    by = {(r["env"], r["seed"], r["label"]): r for r in results}
    rows = []
    for env in envs:
        for seed in seeds:
            for name in configs:
                true, learned = by[(env, seed, f"{name} | true")], by[(env, seed, f"{name} | learned")]
                ratio = learned["steps_per_second"] / true["steps_per_second"]
                stages = sorted((learned.get("loop_seconds") or {}).items(), key=lambda kv: -kv[1])
                rows.append([env, name, seed, learned["labels_used"],
                             f"**{ratio:.3f}** ({learned['steps_per_second']:.1f} / {true['steps_per_second']:.1f})",
                             ", ".join(f"{stage} {s:.1f} s" for stage, s in stages),
                             ", ".join(f"{stage} {s:.1f} s" for stage, s in (learned.get("worker_seconds") or {}).items())
                             or "—",
                             _picks(learned.get("picks")), _cpu(learned, true),
                             f"{learned['true_return_mean']:.1f} / {true['true_return_mean']:.1f}"])
    return markdown_table(["env", "configuration", "seed", "labels", "steps/s ratio (learned / true)",
                           "where the loop's time went", "the worker's time", "picks: kept returns / scored again (clips)",
                           "CPU s in learn, learned / true (ratio; scorer, worker)", "true return (learned / true)"], rows)


def _cpu(learned: dict, true: dict) -> str:
    """The process's CPU seconds inside learn of both runs, true over learned (the share of the
    machine's work that is PPO's own), and of the learned run's the background scorer's and the
    worker's."""
    a = learned.get("cpu_seconds") or {}
    if not (_learn_cpu(learned) and _learn_cpu(true)):
        return "—"
    b = true["cpu_seconds"]
    parts = ", ".join(f"{k} {a[k]:.0f}" for k in ("scorer", "worker") if k in a)
    return f"{a['learn']:.0f} / {b['learn']:.0f} (**{b['learn'] / a['learn']:.3f}**{'; ' + parts if parts else ''})"


def _picks(picks: dict | None) -> str:
    return "—" if not picks else f"{picks['kept_returns']} / {picks['scored_again']} ({picks['clips_scored_again']:,})"


def _learn_cpu(result: dict) -> float | None:
    """A run's CPU seconds inside learn (None for a summary from before they were counted)."""
    return (result.get("cpu_seconds") or {}).get("learn")


def over_seeds(results: list[dict], envs: list[str], seeds: list[int], configs: list[str]) -> str:
    """A row per env and configuration over its seeds, each seed a pair run back to back: the
    pairs' ratios (lowest, median, highest), the ratio of the mean steps/s, and the spread of each
    kind's steps/s across its runs, which says how far one pair's ratio can be trusted on this
    machine."""
    by = {(r["env"], r["seed"], r["label"]): r for r in results}
    rows = []
    for env in envs:
        for name in configs:
            true = [by[(env, s, f"{name} | true")]["steps_per_second"] for s in seeds]
            learned = [by[(env, s, f"{name} | learned")]["steps_per_second"] for s in seeds]
            ratios = [a / b for a, b in zip(learned, true)]
            # CPU in learn, true over learned, of the pairs whose two runs both counted it.
            cpu = [t / a for t, a in ((_learn_cpu(by[(env, s, f"{name} | true")]),
                                       _learn_cpu(by[(env, s, f"{name} | learned")])) for s in seeds) if t and a]
            rows.append([env, name, len(seeds),
                         f"{min(ratios):.3f} / **{statistics.median(ratios):.3f}** / {max(ratios):.3f}",
                         f"**{statistics.mean(learned) / statistics.mean(true):.3f}**",
                         f"{min(true):.1f}–{max(true):.1f}", f"{min(learned):.1f}–{max(learned):.1f}",
                         f"{min(cpu):.3f} / **{statistics.median(cpu):.3f}** / {max(cpu):.3f}" if cpu else "—"])
    return markdown_table(["env", "configuration", "pairs", "ratio: lowest / median / highest",
                           "mean learned / mean true", "true steps/s", "learned steps/s",
                           "CPU in learn, true / learned: lowest / median / highest"], rows)


def main() -> None:
    p = parser(__doc__, out="runs/benchmark", seeds=[0], envs=["cartpole"], workers=None)
    p.add_argument("--steps", type=int, default=None, help="PPO env steps (default: the preset's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--configs", nargs="+", default=["default:"], help="NAME:key=value,... (see above)")
    args = p.parse_args()
    configs = dict(parse_config(c) for c in args.configs)
    runs = grid(args.envs, args.seeds, {f"{name} | {reward}": {**settings, "reward": reward, "steps": args.steps,
                                                                "device": args.device}
                                        for name, settings in configs.items() for reward in ("true", "learned")},
                threads=None)  # every core, one run at a time: a speed figure of the machine, not of a share
    results = run_all(runs, args.out, workers=1)
    table = render(results, args.envs, args.seeds, list(configs))
    if len(args.seeds) > 1:
        table += "\n\n" + over_seeds(results, args.envs, args.seeds, list(configs))
    (Path(args.out) / "benchmark.json").write_text(json.dumps(results, indent=2))
    (Path(args.out) / "benchmark.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
