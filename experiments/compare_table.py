"""The README's `prefrl compare` table: how well each run's learned reward tracks the game score on
fresh episodes, a row per env.

    python experiments/compare_table.py

For each env: one learned-reward ``prefrl train`` run (seed 0, the preset's budget; pong 1000 labels
and 100k steps), then ``prefrl compare`` on it: fresh episodes (5 on cartpole, 1 on pong, 3 on the
others) from each of a random policy, the run's checkpoints and its final policy, scored with the
run's reward model. Each row is one job of ``harness.run_all``, cached by the code version and this
script's job code; the run and its ``compare/`` figures stay in the job's directory under ``--out``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from harness import Run, code_version, grid, markdown_table, parser, run_all, train_run

from prefrl.compare import compare

# env -> settings of its row: TrainConfig fields or preset fields, and the compare episodes per policy
SETTINGS = {
    "cartpole": {"episodes": 5},
    "pong": {"labels": 1000, "steps": 100_000, "episodes": 1},
    "pendulum": {"episodes": 3},
    "acrobot": {"episodes": 3},
}


def compared(run: Run, run_dir: str) -> dict:
    """The job of one row: train into ``run_dir/train``, then ``prefrl compare`` on that run."""
    train_dir = Path(run_dir) / "train"
    settings = {k: v for k, v in run.settings.items() if k != "episodes"}
    summary = train_run(Run(run.label, run.env, run.seed, settings, run.threads), str(train_dir))
    result = compare(train_dir, episodes=run.settings["episodes"])
    return {**result, "labels_used": summary["labels_used"], "timesteps": summary["timesteps"]}


def _pair(a: float | None, b: float | None, digits: int = 3) -> str:
    return " / ".join("—" if v is None else f"{v:.{digits}f}" for v in (a, b))


def render(results: list[dict]) -> str:
    rows = []
    for r in results:
        policies = len(r["policies"])
        what = (f"{r['env']}, {r['labels_used']} labels, {r['timesteps'] // 1000}k steps "
                f"({r['n_episodes'] // policies} episode{'s' if r['n_episodes'] > policies else ''} × {policies} "
                f"policies, {r['n_steps'] // r['n_episodes']} steps)" + (f"; EPIC {r['epic_distance']:.3f}" if r.get("epic_distance") is not None else ""))
        accuracy = "—" if r["pair_accuracy"] is None else f"{r['pair_accuracy']:.3f} ({r['n_pairs']:,})"
        rows.append([what, accuracy, _pair(r["spearman_clip"], r["pearson_clip"]),
                     _pair(r["spearman_step"], r["pearson_step"]), _pair(r["spearman_episode"], r["pearson_episode"])])
    return markdown_table(["run", "pair accuracy (pairs)", "Spearman / Pearson, clip", "step", "episode"], rows)


def main() -> None:
    p = parser(__doc__, out="runs/compare_table", seeds=[0], envs=list(SETTINGS))
    args = p.parse_args()
    unknown = [env for env in args.envs if env not in SETTINGS]
    if unknown:
        raise SystemExit(f"--envs {' '.join(unknown)}: no row settings for it; use some of {', '.join(SETTINGS)}")
    runs = [run for env in args.envs for run in grid([env], args.seeds, {"learned": SETTINGS[env]})]
    results = run_all(runs, args.out, args.workers, job=compared, version=partial(code_version, compared),
                      ray=args.ray)
    table = render(results)
    (Path(args.out) / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
