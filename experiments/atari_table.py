"""The Atari table of Christiano et al. 2017 (Sec. 3.1.2): preference-PPO on synthetic labels
against true-reward PPO, per game, beside what the paper and rl-zoo report.

For each game and seed it runs ``prefrl train GAME --labels 5500`` (the paper's 5.5k, asked by the
synthetic oracle) and the same PPO on the true reward, for ``--steps`` env steps each, then writes
``table.md`` and ``table.json`` in ``--out``. Runs already finished there (a ``summary.json``) are
read, not rerun, so a long table can be built over several sessions or machines.

The paper reports Atari results as learning curves (its Fig. 3), not as numbers; the table gives its
verdict for each game (paraphrased from Sec. 3.1.2) and rl-zoo's reported score of its tuned PPO
after 10M steps as the true-reward reference. The paper trained 50M steps with A3C (``--algo a2c``).

    python experiments/atari_table.py --steps 10000000            # the full table: GPU days
    python experiments/atari_table.py --games pong --steps 100000 # one row
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from prefrl.envs import ATARI_SUITE
from prefrl.train import TrainConfig, train

# rl-zoo benchmark.md, PPO on <Game>NoFrameskip-v4 after 10M steps (one run each).
RL_ZOO_PPO = {"beamrider": 3397.0, "breakout": 398.0, "enduro": 996.4, "pong": 21.0, "qbert": 15627.1,
              "seaquest": 1783.6, "spaceinvaders": 960.3}
# Christiano et al. 2017, Sec. 3.1.2 and Fig. 3 (5.5k synthetic labels against RL on the true reward), paraphrased.
PAPER = {
    "beamrider": "matches or comes close to RL (even with 3.3k labels)",
    "pong": "matches or comes close to RL (even with 3.3k labels)",
    "seaquest": "near RL in the end, learns more slowly",
    "qbert": "near RL in the end, learns more slowly",
    "spaceinvaders": "below RL, improves substantially (often passes the first level)",
    "breakout": "below RL, improves substantially (scores of about 20, 50 with enough labels)",
    "enduro": "A3C struggles on the true reward; preference learning does better",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", nargs="+", default=list(ATARI_SUITE), help="suite names or ALE ids")
    parser.add_argument("--labels", type=int, default=5500)
    parser.add_argument("--steps", type=int, default=10_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--algo", default="ppo", help="ppo or a2c (the paper's learner)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/atari_table")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for game in args.games:
        result = {"game": game, "paper": PAPER.get(game, ""), "rl_zoo_ppo_10M": RL_ZOO_PPO.get(game)}
        for reward in ("true", "learned"):
            returns, labels = [], []
            for seed in args.seeds:
                run_dir = out / f"{game}-{args.algo}-{reward}-l{args.labels}-t{args.steps}-s{seed}"
                if (run_dir / "summary.json").exists():
                    summary = json.loads((run_dir / "summary.json").read_text())
                else:
                    summary = train(TrainConfig(game, reward=reward, labels=args.labels, steps=args.steps, seed=seed,
                                                algo=args.algo, device=args.device, run_dir=str(run_dir),
                                                progress_bar=False))
                returns.append(summary["true_return_mean"])
                labels.append(summary["labels_used"])
            result[f"{reward}_returns"] = returns
            result[f"{reward}_mean"] = float(np.mean(returns))
            if reward == "learned":
                result["labels_used"] = labels
        true, learned = result["true_mean"], result["learned_mean"]
        result["learned_over_true"] = learned / true if true > 0 and learned >= 0 else None
        rows.append(result)
        print(json.dumps(result), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(rows, indent=2))
    seeds = ", ".join(map(str, args.seeds))
    lines = [
        f"Preference-{args.algo.upper()} on {args.labels} synthetic labels against {args.algo.upper()} on the true "
        f"reward, {args.steps:,} env steps, seeds {seeds}: the game score of the final policy (mean over seeds).",
        "",
        "| game | paper, 5.5k synthetic labels vs RL | rl-zoo PPO, 10M steps | true reward | learned reward | "
        "learned / true |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['learned_over_true']:.2f}" if r["learned_over_true"] is not None else "n/a"
        zoo = f"{r['rl_zoo_ppo_10M']:.1f}" if r["rl_zoo_ppo_10M"] is not None else ""
        lines.append(f"| {r['game']} | {r['paper']} | {zoo} | {r['true_mean']:.1f} | {r['learned_mean']:.1f} | {ratio} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
