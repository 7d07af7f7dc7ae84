"""DQN trained on saved cartpole learned rewards through the public API, beside DQN on the true reward.

Runs the README's API example (the block after ``<!-- api-example``), as written, on the learned
reward of each seed's cartpole run of the results table, and the same DQN on the fixed-horizon
CartPole's own reward; prints one markdown table (final true return on the plain env, 10 episodes).

    python experiments/dqn_on_learned_reward.py --seeds 0 1 2 3 4 5 6 7 8 9

The cartpole runs come from ``experiments/results_table.py`` (its ``cartpole`` row, cached under its
code version; ``--runs`` names that directory).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
from harness import README, Run, code_version, count_at_least, markdown_table, parser, run_all


def readme_example() -> str:
    match = re.search(r"<!-- api-example[^>]*-->\n```python\n(.*?)```", README.read_text(), re.S)
    if not match:
        raise SystemExit("README.md has no api-example block")
    return match.group(1)


def dqn_job(run: Run, run_dir: str) -> dict:
    """One DQN: the README example on ``settings["reward_run"]``'s learned reward, or (``reward_run``
    None) the same DQN on the env's own reward."""
    example = readme_example()
    first, _, rest = example.partition("\n")
    steps = run.settings["steps"]
    if run.settings["reward_run"] is None:  # the baseline: the wrapper left out, nothing else changed
        rest = rest.replace("prefrl.RewardVecEnvWrapper(make_vec_env(lambda: make_env(\"cartpole\"), n_envs=1, seed=0), "
                            "reward)", "make_vec_env(lambda: make_env(\"cartpole\"), n_envs=1, seed=0)")
        rest = rest.replace("reward = prefrl.load_reward(run_dir)", "")
    rest = rest.replace("seed=0", f"seed={run.seed}")
    scope: dict = {}
    exec(f"run_dir, steps = {run.settings['reward_run']!r}, {steps}\n" + rest, scope)
    returns = scope["returns"]
    return {"true_return_mean": float(np.mean(returns)), "true_return_std": float(np.std(returns)),
            "reward_run": run.settings["reward_run"], "steps": steps}


def main() -> None:
    p = parser(__doc__, out="runs/dqn_api", seeds=list(range(10)))
    p.add_argument("--runs", default=None, help="the results table's cartpole runs (default: the newest "
                                                "runs/sweep/<code version>/ that has every seed's)")
    p.add_argument("--steps", type=int, default=50_000)
    args = p.parse_args()
    def has_all(base: Path) -> bool:
        return all(any(base.glob(f"cartpole-cartpole-learned-*-s{seed}/reward_model.pt")) for seed in args.seeds)

    bases = [Path(args.runs)] if args.runs else sorted(p for p in Path("runs/sweep").glob("*") if p.is_dir())
    found = [base for base in bases if has_all(base)]
    if not found:
        raise SystemExit(f"no directory holds cartpole learned-reward runs of seeds {args.seeds}: run "
                         "python experiments/results_table.py first, or name their directory with --runs")
    base = max(found, key=lambda b: b.stat().st_mtime)
    runs = []
    for seed in args.seeds:
        reward_run = next(base.glob(f"cartpole-cartpole-learned-*-s{seed}/reward_model.pt")).parent
        runs.append(Run("learned", "cartpole", seed, {"reward_run": str(reward_run), "steps": args.steps}))
        runs.append(Run("true", "cartpole", seed, {"reward_run": None, "steps": args.steps}))
    results = run_all(runs, args.out, workers=args.workers, job=dqn_job,
                      version=partial(code_version, readme_example(), dqn_job), ray=args.ray)
    rows = []
    for label in ("learned", "true"):
        values = [r["true_return_mean"] for r in results if r["label"] == label]
        rows.append([f"DQN on the {label} reward", f"{np.mean(values):.1f}", f"{min(values):.1f}",
                     count_at_least(values, 475), ", ".join(f"{v:.0f}" for v in values)])
    print(f"Learned rewards from {base} (the results table's cartpole runs, 200 labels each); DQN "
          f"{args.steps} steps, rl-zoo's CartPole settings; true return of the final policy over 10 episodes of "
          "CartPole-v1.\n")
    print(markdown_table(["DQN", "mean", "worst", "≥ 475", "seeds " + " ".join(map(str, args.seeds))], rows))


if __name__ == "__main__":
    main()
