"""The Atari table of Christiano et al. 2017 (Sec. 3.1.2): preference-PPO on synthetic labels
against true-reward PPO, per game, beside what the paper and rl-zoo report.

For each game and seed it runs ``prefrl train GAME --labels 5500`` (the paper's 5.5k, asked by the
synthetic oracle) and the same PPO on the true reward, for ``--steps`` env steps each, then writes
``table.md`` and ``table.json`` in ``--out``. The runs are made by ``harness.run_all``, cached by
code version: a rerun of the same code reads the runs it has (a long table can be built over several
sessions, or on several machines whose runs are copied in), a rerun after a change of code runs
again.

The paper reports Atari results as learning curves (its Fig. 3), not as numbers; the table gives its
verdict for each game (paraphrased from Sec. 3.1.2) and rl-zoo's reported score of its tuned PPO
after 10M steps as the true-reward reference. The paper trained 50M steps with A3C (``--algo a2c``).

    python experiments/atari_table.py --steps 10000000            # the full table: GPU days
    python experiments/atari_table.py --games pong --steps 100000 # one row
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from harness import grid, markdown_table, parser, run_all

from prefrl.envs import ATARI_SUITE

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
    p = parser(__doc__, out="runs/atari_table", seeds=[0], workers=1)
    p.add_argument("--games", nargs="+", default=list(ATARI_SUITE), help="suite names or ALE ids")
    p.add_argument("--labels", type=int, default=5500)
    p.add_argument("--steps", type=int, default=10_000_000)
    p.add_argument("--algo", default="ppo", help="ppo or a2c (the paper's learner)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    out = Path(args.out)
    budget = {"labels": args.labels, "steps": args.steps, "algo": args.algo, "device": args.device}
    # One run at a time takes every core (a GPU run's envs step on the CPU); side by side, one each.
    runs = grid(args.games, args.seeds, {reward: {"reward": reward, **budget} for reward in ("true", "learned")},
                threads=None if args.workers == 1 else 1)
    results = run_all(runs, out, args.workers, ray=args.ray)
    rows = []
    for game in args.games:
        result = {"game": game, "paper": PAPER.get(game, ""), "rl_zoo_ppo_10M": RL_ZOO_PPO.get(game)}
        for reward in ("true", "learned"):
            mine = [r for r in results if r["env"] == game and r["label"] == reward]
            result[f"{reward}_returns"] = [r["true_return_mean"] for r in mine]
            result[f"{reward}_mean"] = float(np.mean(result[f"{reward}_returns"]))
            if reward == "learned":
                result["labels_used"] = [r["labels_used"] for r in mine]
        true, learned = result["true_mean"], result["learned_mean"]
        result["learned_over_true"] = learned / true if true > 0 and learned >= 0 else None
        rows.append(result)
    (out / "table.json").write_text(json.dumps(rows, indent=2))
    seeds = ", ".join(map(str, args.seeds))
    table = markdown_table(
        ["game", "paper, 5.5k synthetic labels vs RL", "rl-zoo PPO, 10M steps", "true reward", "learned reward",
         "learned / true"],
        [[r["game"], r["paper"], f"{r['rl_zoo_ppo_10M']:.1f}" if r["rl_zoo_ppo_10M"] is not None else "",
          f"{r['true_mean']:.1f}", f"{r['learned_mean']:.1f}",
          f"{r['learned_over_true']:.2f}" if r["learned_over_true"] is not None else "n/a"] for r in rows])
    report = (f"Preference-{args.algo.upper()} on {args.labels} synthetic labels against {args.algo.upper()} on the "
              f"true reward, {args.steps:,} env steps, seeds {seeds}: the game score of the final policy (mean over "
              f"seeds).\n\n{table}")
    (out / "table.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
