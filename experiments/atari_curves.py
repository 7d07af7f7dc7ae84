"""Learned-reward PPO with the paper's label schedule beside true-reward PPO on one Atari game: final
scores and one learning-curve figure (true score against env steps, label arrival marked).

    python experiments/atari_curves.py --env breakout --steps 1000000 --seeds 0

The paper's schedule (Christiano et al. 2017, App. A): 500 labels on random-policy clips before RL,
then labels at a rate ∝ 5e6/(T + 5e6) (5,000 more over 50M steps). Over ``--steps`` that is
500 + 5000·ln(1 + steps/5e6)/ln(11) labels (880 by 1M steps), with t0 = 5e6 env steps. Both runs go
side by side in two worker processes (about an hour each on 2 cores at 1M steps), cached under the
code version (``harness.py``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from harness import grid, markdown_table, parser, run_all

from prefrl.compare import _resumed, learning_curves
from prefrl.config import parse_overrides
from prefrl.run_dir import RunDir

PAPER_INITIAL, PAPER_LATER, PAPER_STEPS, PAPER_T0 = 500, 5000, 50_000_000, 5e6


def paper_labels(steps: int) -> int:
    """Labels the paper's schedule has asked by ``steps``."""
    return PAPER_INITIAL + round(PAPER_LATER * math.log1p(steps / PAPER_T0) / math.log1p(PAPER_STEPS / PAPER_T0))


def late_training_return(run_dir: str, share: float = 0.1) -> float:
    """Mean true return of the training games logged in the run's last ``share`` of steps: a final
    score less noisy than a few greedy evaluation games (a greedy Breakout policy can stall). Rows
    as the learning-curve figure reads them (a resumed run's history, not the killed run's)."""
    with RunDir(run_dir).metrics_path.open() as f:
        rows = [r for r in _resumed(list(csv.DictReader(f))) if r["true_episode_return"]]
    last = int(rows[-1]["timesteps"]) * (1 - share) if rows else 0
    values = [float(r["true_episode_return"]) for r in rows if int(r["timesteps"]) >= last]
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    p = parser(__doc__, out="runs/atari_curves", seeds=[0], envs=["breakout"])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--set", dest="extra", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="preset fields for both runs, e.g. vector_env=true fit_async=true")
    p.add_argument("--learned-set", dest="learned_extra", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="preset fields for the learned-reward run alone (the true-reward run, and its cached "
                        "result, stay as they are), e.g. reward_epochs=3")
    p.add_argument("--arms", nargs="+", choices=["learned", "true"], default=["learned", "true"],
                   help="make only these runs now (a variant's learned run while the true one is still going); "
                        "the table needs both")
    args = p.parse_args()
    extra = parse_overrides(args.extra)  # JSON values, as `prefrl train --set` reads them
    labels = paper_labels(args.steps)
    configs = {
        "learned": {"labels": labels, "initial_labels": PAPER_INITIAL, "steps": args.steps,
                    "t0_fraction": PAPER_T0 / args.steps, **extra, **parse_overrides(args.learned_extra)},
        "true": {"reward": "true", "steps": args.steps, **extra},
    }
    configs = {arm: configs[arm] for arm in args.arms}
    results = run_all(grid(args.envs, args.seeds, configs), args.out, workers=args.workers, ray=args.ray)
    rows = []
    for env in args.envs:
        for seed in args.seeds:
            by = {r["label"]: r for r in results if r["env"] == env and r["seed"] == seed}
            learned, true = by.get("learned", {"failed": "not made"}), by.get("true", {"failed": "not made"})
            if "failed" in learned or "failed" in true:
                continue  # run_all has printed why; a rerun makes the failed runs again
            share = learned["true_return_mean"] / true["true_return_mean"] if true["true_return_mean"] else float("nan")
            variant = "".join(f"-{item.replace('=', '_')}" for item in args.learned_extra)  # one figure per variant
            png = Path(learned["run_dir"]).parent / f"{env}-s{seed}{variant}-learning_curves.png"
            learning_curves(learned["run_dir"], true["run_dir"], png)
            late_l, late_t = (late_training_return(r["run_dir"]) for r in (learned, true))
            rows.append([env, seed, f"{learned['true_return_mean']:.1f}", f"{true['true_return_mean']:.1f}",
                         f"{share:.2f}", f"{late_l:.2f} / {late_t:.2f} = {late_l / late_t:.2f}", learned["labels_used"],
                         f"{learned['steps_per_second']:.0f} / {true['steps_per_second']:.0f}", str(png)])
    print(f"{args.steps} PPO steps; learned: the paper's schedule, {labels} labels ({PAPER_INITIAL} before RL); "
          "final policy's true return over the preset's evaluation games\n")
    print(markdown_table(["game", "seed", "learned", "true", "learned / true",
                          "training games, last 10% of steps: learned / true", "labels", "steps/s learned / true",
                          "figure"], rows))


if __name__ == "__main__":
    main()
