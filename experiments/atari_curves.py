"""Learned-reward PPO with the paper's label schedule beside true-reward PPO on one Atari game: final
scores and one learning-curve figure (true score against env steps, label arrival marked).

    python experiments/atari_curves.py --env breakout --steps 1000000 --seeds 0

The paper's schedule (Christiano et al. 2017, App. A): 500 labels on random-policy clips before RL,
then labels at a rate ∝ 5e6/(T + 5e6) (5,000 more over 50M steps). Over ``--steps`` that is
500 + 5000·ln(1 + steps/5e6)/ln(11) labels (880 by 1M steps), with t0 = 5e6 env steps. Both runs go
side by side in two worker processes (about an hour each on 2 cores at 1M steps), cached under the
code version (``harness.py``).

A learning claim is a count over seeds, and a checkout's ``runs/`` does not outlive its session:
``--record experiments/atari_seeds.csv`` adds each seed's figures to a CSV kept in git (one row per
code version, game, steps, settings and seed; a rerun replaces its row), and prints the count so far
of seeds whose learned / true ratio reaches ``--aim``. ``--count`` prints that count from the record
alone, without making or reading any run.

Each seed's ratio is paired (its learned run over its own true-reward run), and the count also gives
each learned run over the mean of the group's true-reward runs: seeds of the same code and settings
whose true-reward runs were made, whatever their learned-reward variant. The two runs of one seed
part on their first rollout (the rewards differ), so pairing them does not cancel noise; the mean of
several true-reward runs is a steadier "true-reward PPO's score". That lets a session spend both cores
on learned runs: ``--arms learned --record CSV`` records a seed's learned figures alone (a record row
gains the figures a rerun brings and keeps the rest). The count pairs it with that seed's true-reward
run wherever the record holds one, in any variant's row of the same code and settings: a variant's
learned runs need no true-reward runs of their own; otherwise its paired ratio waits for ``--arms
true``.
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
RECORD_KEY = ["code", "env", "steps", "set", "learned_set"]  # a group of seeds that one count is over
RECORD_FIELDS = RECORD_KEY + ["seed", "learned_late", "true_late", "ratio", "learned_eval", "true_eval", "labels"]


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


def read_record(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


LEARNED_FIELDS, TRUE_FIELDS = ("learned_late", "learned_eval", "labels"), ("true_late", "true_eval")


def write_record(path: str | Path, new: list[dict]) -> None:
    """Add ``new`` rows to the record at ``path``. A row of a group and seed already there takes the
    figures the new row brings (a rerun's replace the old ones; a field left blank, an arm not made
    this time, keeps what the record had), and its paired ratio is worked out again."""
    ident = lambda r: tuple(str(r[k]) for k in RECORD_KEY + ["seed"])  # noqa: E731
    old = {ident(r): r for r in read_record(path)}
    for r in new:
        merged = {**old.get(ident(r), {}), **{k: v for k, v in r.items() if str(v) != ""}}
        merged = {k: merged.get(k, "") for k in RECORD_FIELDS}
        both = merged["learned_late"] != "" and merged["true_late"] != ""
        merged["ratio"] = f"{float(merged['learned_late']) / float(merged['true_late']):.3f}" if both else ""
        old[ident(r)] = merged
    rows = list(old.values())
    rows.sort(key=lambda r: (tuple(str(r[k]) for k in RECORD_KEY), int(r["seed"])))
    path = Path(path)
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RECORD_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)


def count_lines(rows: list[dict], aim: float, only: set[tuple] | None = None) -> list[str]:
    """Two lines per group of the record (a group: code, game, steps, settings, learned variant): how
    many of its seeds reach ``aim``, paired (each learned run over its seed's true-reward run, from any
    variant's row of the same code, game, steps and settings, since the true-reward run is the same
    run whatever the variant) and against the mean true-reward score (those true-reward runs, one per
    seed). ``only``: the groups to print; the true-reward runs still come from every row given."""
    groups: dict[tuple, list[dict]] = {}
    truths: dict[tuple, dict[str, float]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in RECORD_KEY), []).append(r)
        if r.get("true_late", "") != "":
            truths.setdefault(tuple(r[k] for k in RECORD_KEY[:-1]), {})[str(r["seed"])] = float(r["true_late"])
    lines = []
    for key, members in groups.items():
        if only is not None and key not in only:
            continue
        head = f"{key[1]}, {key[2]} steps, code {key[0]}, --set {key[3] or '-'}, --learned-set {key[4] or '-'}: "
        truth = truths.get(key[:-1], {})
        # a seed's true-reward run does not depend on the learned variant, so a variant's learned run made
        # alone pairs with that seed's true run wherever the record holds it
        paired = []
        for r in members:
            if r.get("ratio", "") != "":
                paired.append((r, float(r["ratio"])))
            elif r.get("learned_late", "") != "" and truth.get(str(r["seed"])):
                paired.append((r, float(r["learned_late"]) / truth[str(r["seed"])]))
        if paired:
            ratios = [x for _, x in paired]
            named = ", ".join(f"s{r['seed']} {x:.3f}" for r, x in paired)
            lines.append(head + f"learned / true (paired) >= {aim} on {sum(x >= aim for x in ratios)} of {len(ratios)} "
                         f"seeds (mean {sum(ratios) / len(ratios):.3f}, min {min(ratios):.3f}; {named})")
        learned = [r for r in members if r.get("learned_late", "") != ""]
        if truth and learned:
            mean = sum(truth.values()) / len(truth)
            ratios = [float(r["learned_late"]) / mean for r in learned]
            named = ", ".join(f"s{r['seed']} {x:.3f}" for r, x in zip(learned, ratios))
            lines.append(head + f"learned / mean true >= {aim} on {sum(x >= aim for x in ratios)} of {len(ratios)} "
                         f"seeds (mean true {mean:.2f} over {len(truth)} seeds; min {min(ratios):.3f}; {named})")
        elif learned:
            lines.append(head + f"{len(learned)} learned seeds, no true-reward run recorded yet: no ratio")
    return lines


def main() -> None:
    p = parser(__doc__, out="runs/atari_curves", seeds=[0], envs=["breakout"])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--set", dest="extra", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="preset fields for both runs, e.g. vector_env=true fit_async=true")
    p.add_argument("--learned-set", dest="learned_extra", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="preset fields for the learned-reward run alone (the true-reward run, and its cached "
                        "result, stay as they are), e.g. reward_epochs=3")
    p.add_argument("--arms", nargs="+", choices=["learned", "true"], default=["learned", "true"],
                   help="make only these runs now (a variant's learned run while the true one is still going; "
                        "learned runs alone, counted against the mean of the record's true-reward runs); the "
                        "paired ratio needs both")
    p.add_argument("--record", metavar="CSV", help="add each seed's figures to this CSV (kept in git) and print "
                   "the count of seeds so far, e.g. experiments/atari_seeds.csv")
    p.add_argument("--aim", type=float, default=0.7, help="the learned / true ratio a seed is counted at (default 0.7)")
    p.add_argument("--count", action="store_true", help="print the count from --record's CSV alone and exit")
    args = p.parse_args()
    if args.count:
        if not args.record:
            p.error("--count reads the record: give it with --record CSV")
        rows = read_record(args.record)
        if not rows:
            p.error(f"--record {args.record}: no seeds recorded there yet; run this script with --record first")
        print("\n".join(count_lines(rows, args.aim)))
        return
    extra = parse_overrides(args.extra)  # JSON values, as `prefrl train --set` reads them
    labels = paper_labels(args.steps)
    configs = {
        "learned": {"labels": labels, "initial_labels": PAPER_INITIAL, "steps": args.steps,
                    "t0_fraction": PAPER_T0 / args.steps, **extra, **parse_overrides(args.learned_extra)},
        "true": {"reward": "true", "steps": args.steps, **extra},
    }
    configs = {arm: configs[arm] for arm in args.arms}
    results = run_all(grid(args.envs, args.seeds, configs), args.out, workers=args.workers, ray=args.ray)
    rows, record = [], []
    for env in args.envs:
        for seed in args.seeds:
            by = {r["label"]: r for r in results if r["env"] == env and r["seed"] == seed}
            made = {arm: r for arm, r in by.items() if "failed" not in r}  # run_all has printed why the rest failed
            if not made:
                continue
            learned, true = made.get("learned"), made.get("true")
            late = {arm: late_training_return(r["run_dir"]) for arm, r in made.items()}
            if learned:
                variant = "".join(f"-{item.replace('=', '_')}" for item in args.learned_extra)  # one figure per variant
                png = Path(learned["run_dir"]).parent / f"{env}-s{seed}{variant}-learning_curves.png"
                learning_curves(learned["run_dir"], true["run_dir"] if true else None, png)
            fig = lambda x, form: format(x, form) if x is not None else "-"  # noqa: E731
            le, te = (made[a]["true_return_mean"] if a in made else None for a in ("learned", "true"))
            ll, tl = late.get("learned"), late.get("true")
            rows.append([env, seed, fig(le, ".1f"), fig(te, ".1f"), fig(le / te if learned and true and te else None, ".2f"),
                         f"{fig(ll, '.2f')} / {fig(tl, '.2f')} = {fig(ll / tl if learned and true else None, '.2f')}",
                         learned["labels_used"] if learned else "-",
                         f"{fig(learned and learned['steps_per_second'], '.0f')} / {fig(true and true['steps_per_second'], '.0f')}",
                         str(png) if learned else "-"])
            record.append({"code": Path(next(iter(made.values()))["run_dir"]).parent.name, "env": env,
                           "steps": args.steps, "set": " ".join(sorted(args.extra)),
                           "learned_set": " ".join(sorted(args.learned_extra)), "seed": seed,
                           "learned_late": f"{ll:.2f}" if learned else "",
                           "true_late": f"{tl:.2f}" if true else "",
                           "learned_eval": f"{le:.1f}" if learned else "", "true_eval": f"{te:.1f}" if true else "",
                           "labels": learned["labels_used"] if learned else ""})
    print(f"{args.steps} PPO steps; learned: the paper's schedule, {labels} labels ({PAPER_INITIAL} before RL); "
          "final policy's true return over the preset's evaluation games\n")
    print(markdown_table(["game", "seed", "learned", "true", "learned / true",
                          "training games, last 10% of steps: learned / true", "labels", "steps/s learned / true",
                          "figure"], rows))
    if args.record and record:
        write_record(args.record, record)
        keys = {tuple(str(r[k]) for k in RECORD_KEY) for r in record}
        # every row goes in, so that a variant's learned runs pair with the true runs of other variants' rows
        print(f"\nrecorded in {args.record}; the count so far:\n"
              + "\n".join(count_lines(read_record(args.record), args.aim, only=keys)))


if __name__ == "__main__":
    main()
