"""The README's results table, regenerated from scratch in one command.

    python experiments/results_table.py              # every run, then the tables (hours on 2 cores)
    python experiments/results_table.py --readme     # ... and write them into README.md
    python experiments/results_table.py --made       # train nothing: the runs made so far

Every figure comes from ``prefrl train`` runs made by ``harness.run_all``, cached under
``runs/sweep/<code version>/``: after any change to the package's code the runs are made again,
so the table never shows numbers of older code. The tables:

1. learned against true reward on every classic-control preset, seeds 0–9 (mountaincar: 0–1), with
   how many seeds reach the bar on cartpole (475) and each env's mean and worst seed;
2. cartpole's label efficiency: how many of seeds 0–9 reach 475 at 25, 50, 100 and 200 labels.
"""

from __future__ import annotations

import numpy as np
from harness import Run, code_version, count_at_least, made, markdown_table, parser, run_all, write_readme

SEEDS = list(range(10))
ENVS = {"cartpole": SEEDS, "pendulum": SEEDS, "acrobot": SEEDS, "mountaincar": [0, 1]}
BUDGETS = [25, 50, 100, 200]
SOLVED = 475.0
BLOCK = "results"  # README.md's lines <!-- results:begin --> and <!-- results:end --> hold the tables


def runs() -> list[Run]:
    """Every run of the tables, the learned-reward ones of each env first."""
    def env_runs(env: str, reward: str) -> list[Run]:
        return [Run(f"{env} {reward}", env, s, {"reward": reward}) for s in ENVS[env]]

    out = env_runs("cartpole", "learned")
    for env in ("acrobot", "pendulum"):
        out += env_runs(env, "learned") + env_runs(env, "true")
    out += [Run(f"cartpole {n} labels", "cartpole", s, {"labels": n}) for n in BUDGETS if n != 200 for s in SEEDS]
    return out + env_runs("cartpole", "true") + env_runs("mountaincar", "learned") + env_runs("mountaincar", "true")


def render(results: list[dict], expected: list[Run]) -> str:
    """The tables; a cell whose runs are not all made yet says how many of its seeds are in it."""
    by: dict[str, dict[int, dict]] = {}
    for r in results:
        by.setdefault(r["label"], {})[r["seed"]] = r
    seeds_of: dict[str, list[int]] = {}
    for run in expected:
        seeds_of.setdefault(run.label, []).append(run.seed)
    machines = sorted({r["machine"] for r in results if r.get("machine")})

    def values(label: str) -> list[float]:
        return [by[label][s]["true_return_mean"] for s in seeds_of[label] if s in by.get(label, {})]

    def per_seed(label: str) -> str:
        """Every seed's value ('…' where not run yet), a dagger per other machine runs were made on."""
        made = by.get(label, {})
        text = ", ".join(f"{made[s]['true_return_mean']:.0f}" if s in made else "…" for s in seeds_of[label])
        return text + "".join("†" * (i + 1) for i, m in enumerate(machines)
                              if any(r.get("machine") == m for r in made.values()))

    def summary(label: str, bold: bool = False) -> str:
        v = values(label)
        if not v:
            return "not run yet"
        mean = f"**{np.mean(v):.1f}**" if bold else f"{np.mean(v):.1f}"
        n = len(seeds_of[label])
        return f"{mean} (worst {min(v):.0f}" + (f"; {len(v)} of {n} seeds)" if len(v) < n else ")")

    def solved(label: str) -> str:
        v = values(label)
        if not v:
            return "—"
        return count_at_least(v, SOLVED) + ("" if len(v) == len(seeds_of[label]) else " run so far")

    rows = []
    for env, seeds in ENVS.items():
        learned = f"{env} learned"
        here = [r["wall_seconds"] for r in by.get(learned, {}).values() if not r.get("machine")]
        made = next(iter(by.get(learned, {}).values()), None)
        rows.append([env, f"{made['timesteps'] // 1000}k" if made else "", f"{seeds[0]}–{seeds[-1]}",
                     summary(learned, bold=True), summary(f"{env} true"),
                     f"{solved(learned)} / {solved(f'{env} true')}" if env == "cartpole" else "",
                     per_seed(learned), per_seed(f"{env} true"), f"{np.mean(here):.0f}" if here else "—"])
    main = markdown_table(["env", "steps", "seeds", "learned reward, mean", "true reward, mean",
                           f"≥ {SOLVED:g} (learned / true)", "learned, per seed", "true, per seed",
                           "wall s a learned run (here)"], rows)
    eff_rows = []
    for n in BUDGETS:
        label = "cartpole learned" if n == 200 else f"cartpole {n} labels"
        eff_rows.append([n, solved(label), summary(label), per_seed(label)])
    efficiency = markdown_table(["labels", f"seeds ≥ {SOLVED:g}", "mean", "per seed (0–9)"], eff_rows)
    notes = "".join(f"\n{'†' * (i + 1)} Made on another machine and copied in: {m}. Its runs' wall time is not "
                    f"this machine's.\n" for i, m in enumerate(machines))
    return (f"Code version `{code_version()}` (`python experiments/results_table.py`); synthetic oracle labels, "
            f"200 per run unless stated; each value is the final policy's mean true return over the preset's "
            f"evaluation episodes on the plain gymnasium env.\n\n{main}\nCartpole's label efficiency "
            f"(300k steps):\n\n{efficiency}{notes}")


def main() -> None:
    p = parser(__doc__, out="runs/sweep")
    p.add_argument("--readme", action="store_true",
                   help=f"write the tables into README.md between <!-- {BLOCK}:begin --> and <!-- {BLOCK}:end -->")
    p.add_argument("--made", action="store_true",
                   help="train nothing: the tables of the runs this code version has made so far")
    args = p.parse_args()
    expected = runs()
    results = made(expected, args.out) if args.made else run_all(expected, args.out, args.workers, ray=args.ray)
    text = render(results, expected)
    print(text)
    if args.readme:
        write_readme(BLOCK, text)


if __name__ == "__main__":
    main()
