"""Short cartpole, pendulum and pong runs whose ``metrics.csv`` must not change across a refactor.

Run it once in a checkout of the old code and once in the new one, then compare:

    python experiments/same_behaviour.py run OUT_OLD      # in the old checkout
    python experiments/same_behaviour.py run OUT_NEW      # in this one
    python experiments/same_behaviour.py diff OUT_OLD OUT_NEW

``diff`` compares every column but ``wall_seconds`` (a clock) row by row and prints, per run,
``identical`` or the first differing row.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

# name -> prefrl train arguments (small budgets: a minute or two each on 2 cores)
RUNS = {
    "cartpole": ["cartpole", "--steps", "20000", "--labels", "40", "--seed", "3"],
    "cartpole-rank3": ["cartpole", "--steps", "12000", "--labels", "30", "--rank-size", "3", "--seed", "1"],
    "pendulum": ["pendulum", "--steps", "16384", "--labels", "40", "--seed", "2"],
    "pong": ["pong", "--steps", "2048", "--labels", "24", "--initial-labels", "16", "--seed", "0",
             "--set", "random_steps=1600", "--set", "candidate_steps=1600", "--set", "eval_episodes=1"],
}
CLOCK = {"wall_seconds"}


def run(out: Path, only: list[str]) -> None:
    for name, args in RUNS.items():
        if only and name not in only:
            continue
        run_dir = out / name
        if (run_dir / "summary.json").exists():
            print(f"{name}: done already ({run_dir})")
            continue
        cmd = [sys.executable, "-m", "prefrl", "train", *args, "--no-progress", "--run-dir", str(run_dir)]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in CLOCK} for row in csv.DictReader(f)]


def diff(old: Path, new: Path) -> int:
    bad = 0
    for name in RUNS:
        a, b = old / name / "metrics.csv", new / name / "metrics.csv"
        if not (a.exists() and b.exists()):
            print(f"{name}: missing ({a if not a.exists() else b})")
            bad += 1
            continue
        ra, rb = rows(a), rows(b)
        first = next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), None)
        if first is None and len(ra) == len(rb):
            print(f"{name}: identical ({len(ra)} rows, every column but {', '.join(sorted(CLOCK))})")
            continue
        bad += 1
        if first is None:
            print(f"{name}: {len(ra)} rows before, {len(rb)} after")
        else:
            cols = [k for k in ra[first] if ra[first][k] != rb[first].get(k)]
            print(f"{name}: row {first} differs in {', '.join(cols)}: "
                  + "; ".join(f"{k} {ra[first][k]} -> {rb[first].get(k)}" for k in cols))
    return 1 if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="make the short runs into OUT")
    r.add_argument("out", type=Path)
    r.add_argument("--only", nargs="*", default=[], choices=list(RUNS))
    d = sub.add_parser("diff", help="compare two OUT directories")
    d.add_argument("old", type=Path)
    d.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.only)
    else:
        sys.exit(diff(args.old, args.new))


if __name__ == "__main__":
    main()
