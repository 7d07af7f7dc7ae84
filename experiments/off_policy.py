"""Off-policy learners on the learned reward (the replay buffer relabeled after each refit, as PEBBLE
does) against PPO on the same learned reward and against the same learner on the true reward, at
equal env steps.

    python experiments/off_policy.py --envs pendulum --seeds 0 1 2 3 4
    python experiments/off_policy.py --envs cartpole --seeds 0 1 2 --level 475 \\
        --configs "DQN, learned:algo=dqn" "DQN, true:algo=dqn,reward=true"

A configuration is ``NAME:key=value,...`` as in ``sweep.py``. The defaults, on pendulum: SAC on the
learned reward (200 labels, its preset's 20k steps), SAC on the true reward (20k steps) and PPO on
the learned reward (200 labels, its preset's 150k steps). Every run saves ``--checkpoints`` policy
checkpoints, evenly spaced; each is scored on 10 episodes of the plain env (deterministic actions),
so each run gives a learning curve of true return against env steps.

Prints, per env, a table with a row per configuration: the mean true return at each step mark
(``--marks``; the last checkpoint at or before it), the final one (``prefrl train``'s own evaluation),
and per seed the env steps until a checkpoint first scored ``--level`` or more; and writes the
curves (mean and every seed) as ``OUT/<version>/curves_<env>.png``. Runs are cached by code version
(``harness.py``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from harness import code_version, grid, markdown_table, parse_config, parser, run_all, train_run

DEFAULT_CONFIGS = ["SAC, learned:algo=sac", "SAC, true:algo=sac,reward=true", "PPO, learned:algo=ppo"]
LEVELS = {"pendulum": -200.0, "cartpole": 475.0}


def curve_run(run, run_dir: str) -> dict:
    """``prefrl train``, then every checkpoint scored on 10 episodes of the plain env: ``curve`` holds
    [env steps, mean true return] pairs."""
    from prefrl.envs import make_env
    from prefrl.run_dir import RunDir
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    run_dir = str(Path(run_dir) / "train")  # the job's result, curve and all, is the summary.json above it
    summary = train_run(run, run_dir)
    trained = RunDir(run_dir)
    env = Monitor(make_env(run.env, fixed_horizon=False))
    env.reset(seed=run.seed + 20_000)
    curve = []
    for steps, path in trained.checkpoints():
        returns, _ = evaluate_policy(trained.load_policy(path), env, n_eval_episodes=10, deterministic=True,
                                     return_episode_rewards=True)
        curve.append([steps, float(np.mean(returns))])
    env.close()
    return {**summary, "curve": curve}


def at(curve: list[list[float]], mark: int) -> float | None:
    """The return of the last checkpoint at or before ``mark`` env steps (None: none so early)."""
    before = [r for s, r in curve if s <= mark]
    return before[-1] if before else None


def reached(curve: list[list[float]], level: float) -> int | None:
    return next((int(s) for s, r in curve if r >= level), None)


def render(results: list[dict], env: str, configs: list[str], seeds: list[int], marks: list[int],
           level: float) -> str:
    rows = []
    for name in configs:
        mine = sorted((r for r in results if r["label"] == name and r["env"] == env), key=lambda r: r["seed"])
        cells = [name]
        for mark in marks:
            values = [v for v in (at(r["curve"], mark) for r in mine) if v is not None]
            cells.append(f"{np.mean(values):.0f}" if len(values) == len(mine) else "—")
        finals = [r["true_return_mean"] for r in mine]
        each = ", ".join(f"{v:.0f}" for v in finals)
        cells.append(f"{np.mean(finals):.0f} ({each}) at {mine[0]['timesteps'] // 1000}k")
        steps = [reached(r["curve"], level) for r in mine]
        cells.append(", ".join("—" if s is None else f"{s / 1000:g}k" for s in steps))
        cells.append(f"{np.mean([r['wall_seconds'] for r in mine]) / 60:.1f}")
        rows.append(cells)
    return markdown_table(["configuration", *[f"at {m // 1000}k steps" for m in marks],
                           f"final, mean (seeds {', '.join(map(str, seeds))})",
                           f"steps to ≥ {level:g}, per seed", "wall min"], rows)


def plot(results: list[dict], env: str, configs: list[str], path: Path, level: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, name in enumerate(configs):
        colour = f"C{k}"
        mine = [r for r in results if r["label"] == name and r["env"] == env]
        for r in mine:
            steps, values = zip(*r["curve"]) if r["curve"] else ((), ())
            ax.plot(steps, values, color=colour, alpha=0.25, lw=1)
        steps = sorted({s for r in mine for s, _ in r["curve"]})
        means = [np.mean([v for v in (at(r["curve"], s) for r in mine) if v is not None]) for s in steps]
        ax.plot(steps, means, color=colour, lw=2.2, label=f"{name} (mean of {len(mine)} seeds)")
    ax.axhline(level, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("env steps (log scale)")
    ax.set_ylabel("true return, 10 episodes, deterministic")
    ax.set_title(f"{env}: checkpoints scored on the true return")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = parser(__doc__, out="runs/off_policy", seeds=list(range(5)), envs=["pendulum"])
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="NAME:key=value,... (see above)")
    p.add_argument("--checkpoints", type=int, default=10, help="policy checkpoints per run, each scored")
    p.add_argument("--marks", type=int, nargs="+", default=[10_000, 20_000], help="env steps to compare at")
    p.add_argument("--level", type=float, default=None, help="the true return counted as reached "
                                                             "(default: -200 pendulum, 475 cartpole)")
    args = p.parse_args()
    configs = {name: {**settings, "checkpoints": args.checkpoints}
               for name, settings in (parse_config(c) for c in args.configs)}
    runs = grid(args.envs, args.seeds, configs)
    results = run_all(runs, args.out, args.workers, job=curve_run, version=partial(code_version, curve_run),
                      ray=args.ray)
    out = Path(args.out) / code_version(curve_run)
    for env in args.envs:
        level = args.level if args.level is not None else LEVELS.get(env, 0.0)
        table = render(results, env, list(configs), args.seeds, args.marks, level)
        (out / f"off_policy_{env}.md").write_text(table)
        plot(results, env, list(configs), out / f"curves_{env}.png", level)
        print(f"{env}:\n\n{table}\n\ncurves: {out / f'curves_{env}.png'}")


if __name__ == "__main__":
    main()
