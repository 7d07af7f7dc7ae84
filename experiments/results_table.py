"""The README's results table, regenerated from scratch in one command.

    python experiments/results_table.py              # every run, then the tables (hours on 2 cores)
    python experiments/results_table.py --readme     # ... and write them into README.md

Every figure comes from ``prefrl train`` runs made by ``harness.run_all``, cached under
``runs/sweep/<code version>/``: after any change to the package's code the runs are made again,
so the table never shows numbers of older code. The tables:

1. learned against true reward on every classic-control preset, seeds 0–9 (mountaincar: 0–1), with
   how many seeds reach the bar on cartpole (475) and each env's mean and worst seed;
2. cartpole's label efficiency: how many of seeds 0–9 reach 475 at 25, 50, 100 and 200 labels.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from harness import Run, code_version, count_at_least, markdown_table, run_all

SEEDS = list(range(10))
ENVS = {"cartpole": SEEDS, "pendulum": SEEDS, "acrobot": SEEDS, "mountaincar": [0, 1]}
BUDGETS = [25, 50, 100, 200]
SOLVED = 475.0
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def runs() -> list[Run]:
    """Every run of the tables, the learned-reward ones of each env first."""
    def env_runs(env: str, reward: str) -> list[Run]:
        return [Run(f"{env} {reward}", env, s, {"reward": reward}) for s in ENVS[env]]

    out = env_runs("cartpole", "learned")
    for env in ("pendulum", "acrobot"):
        out += env_runs(env, "learned") + env_runs(env, "true")
    out += [Run(f"cartpole {n} labels", "cartpole", s, {"labels": n}) for n in BUDGETS if n != 200 for s in SEEDS]
    return out + env_runs("cartpole", "true") + env_runs("mountaincar", "learned") + env_runs("mountaincar", "true")


def render(results: list[dict]) -> str:
    by: dict[str, list[dict]] = {}
    for r in results:
        by.setdefault(r["label"], []).append(r)

    def values(label: str) -> list[float]:
        return [r["true_return_mean"] for r in by[label]]

    rows = []
    for env, seeds in ENVS.items():
        learned, true = values(f"{env} learned"), values(f"{env} true")
        wall = np.mean([r["wall_seconds"] for r in by[f"{env} learned"]])
        solved = (f"{count_at_least(learned, SOLVED)} / {count_at_least(true, SOLVED)}" if env == "cartpole" else "")
        rows.append([env, f"{by[f'{env} learned'][0]['timesteps'] // 1000}k", f"{seeds[0]}–{seeds[-1]}",
                     f"**{np.mean(learned):.1f}** (worst {min(learned):.0f})",
                     f"{np.mean(true):.1f} (worst {min(true):.0f})", solved,
                     ", ".join(f"{v:.0f}" for v in learned), ", ".join(f"{v:.0f}" for v in true), f"{wall:.0f}"])
    main = markdown_table(["env", "steps", "seeds", "learned reward, mean", "true reward, mean",
                           f"≥ {SOLVED:g} (learned / true)", "learned, per seed", "true, per seed",
                           "wall s a learned run"], rows)
    eff_rows = []
    for n in BUDGETS:
        label = "cartpole learned" if n == 200 else f"cartpole {n} labels"
        v = values(label)
        eff_rows.append([n, count_at_least(v, SOLVED), f"{np.mean(v):.1f}", ", ".join(f"{x:.0f}" for x in v)])
    efficiency = markdown_table(["labels", f"seeds ≥ {SOLVED:g}", "mean", "per seed (0–9)"], eff_rows)
    return (f"Code version `{code_version()}` (`python experiments/results_table.py`); synthetic oracle labels, "
            f"200 per run unless stated; each value is the final policy's mean true return over the preset's "
            f"evaluation episodes on the plain gymnasium env.\n\n{main}\nCartpole's label efficiency "
            f"(300k steps):\n\n{efficiency}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="runs/sweep")
    parser.add_argument("--readme", action="store_true", help=f"replace the block between {BEGIN} and {END}")
    args = parser.parse_args()
    text = render(run_all(runs(), args.out, args.workers))
    print(text)
    if args.readme:
        readme = Path(__file__).resolve().parent.parent / "README.md"
        old = readme.read_text()
        if BEGIN not in old or END not in old:
            raise SystemExit(f"{readme} has no {BEGIN} ... {END} block to replace")
        readme.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{text}{END}", old,
                                 flags=re.S))
        print(f"wrote the tables into {readme}")


if __name__ == "__main__":
    main()
