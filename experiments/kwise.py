"""K-wise rankings with the Plackett–Luce loss against the same rankings split into pairs, and
against plain pairs: held-out accuracy of the learned reward, offline, on random-policy clips.

    python experiments/kwise.py --env pendulum --queries 10 20 50 100 --seeds 0 1 2 3 4

For each budget N and seed, from one pool of random-policy clips the oracle answers:
  pairs         N pairs, Bradley–Terry;
  pairs x1.5    1.5·N pairs: as many clips shown as N rankings of three;
  K=3 PL        N rankings of three clips, Plackett–Luce loss on each ranking;
  K=3 split     the same N rankings split into their 3 pairs each, Bradley–Terry on the pairs
                (the pairwise form; the bootstrap and the 1/e validation split then work on pairs).
Each trains the env preset's reward ensemble the way ``prefrl train`` fits it before RL; the score is
pair accuracy against the true return on 2,000 held-out clips (pairs with equal returns left out)
and the Spearman correlation of learned and true clip returns.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from harness import markdown_table
from prefrl.envs import make_env

from prefrl.clips import Clip
from prefrl.compare import correlations, pair_accuracy
from prefrl.presets import preset_for
from prefrl.reward_fn import LearnedReward
from prefrl.reward_model import RewardEnsemble, RewardModelConfig
from prefrl.reward_training import ComparisonBatch, EnsembleTrainer, RankingBatch, is_validation
from prefrl.teachers import OracleTeacher


def random_clips(env_name: str, n: int, length: int, seed: int) -> tuple[list[Clip], object]:
    """n clips of ``length`` random-policy steps, each from a fresh episode start."""
    env = make_env(env_name)
    env.action_space.seed(seed)
    clips = []
    for k in range(n):
        obs, _ = env.reset(seed=seed * 100_000 + k)
        o, a, r = [], [], []
        for _ in range(length):
            action = env.action_space.sample()
            o.append(obs)
            a.append(action)
            obs, reward, *_ = env.step(action)
            r.append(reward)
        clips.append(Clip(np.array(o, np.float32), np.array(a), np.array(r, np.float32)))
    return clips, env


def fit(condition: str, clips: list[Clip], feats: torch.Tensor, n: int, rng: np.random.Generator, env, preset,
        seed: int) -> RewardEnsemble:
    """Ask the oracle for this condition's feedback on clips drawn from the pool and fit an ensemble."""
    teacher = OracleTeacher(seed=seed)
    k = 3 if condition.startswith("K=3") else 2
    count = int(round(1.5 * n)) if condition == "pairs x1.5" else n
    groups = np.array([rng.choice(len(clips), size=k, replace=False) for _ in range(count)])
    torch.manual_seed(seed)
    model = RewardEnsemble(RewardModelConfig(feats.shape[-1], reward_std=preset.reward_std,
                                             use_action=preset.reward_uses_action))
    trainer = EnsembleTrainer(model, epochs=preset.reward_epochs, min_updates=preset.reward_updates,
                              batch_size=preset.reward_batch, seed=seed)
    if k == 2:
        prefs = teacher([(clips[i], clips[j]) for i, j in groups])
        batch = ComparisonBatch(torch.as_tensor(groups[:, 0]), torch.as_tensor(groups[:, 1]),
                                torch.tensor(prefs, dtype=torch.float32), feats)
    else:
        orders = teacher.rank([[clips[i] for i in g] for g in groups])
        ranked = torch.as_tensor(np.take_along_axis(groups, np.array(orders), 1))  # (N, 3) best first
        if condition == "K=3 PL":
            batch = RankingBatch(ranked, feats)
        else:  # the same rankings as their C(3,2) pairs, better over worse
            a, b = np.triu_indices(3, 1)
            batch = ComparisonBatch(ranked[:, a].reshape(-1), ranked[:, b].reshape(-1),
                                    torch.ones(len(ranked) * 3), feats)
    ids = np.arange(1, batch.n + 1)
    val = np.flatnonzero(is_validation(ids, seed))
    train = np.flatnonzero(~is_validation(ids, seed))
    trainer.train(batch.subset(train), batch.subset(val), epochs=5 * preset.reward_epochs)
    return model


CONDITIONS = ["pairs", "pairs x1.5", "K=3 PL", "K=3 split"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="pendulum")
    parser.add_argument("--queries", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--pool", type=int, default=1000, help="random-policy clips to query from")
    parser.add_argument("--test", type=int, default=2000, help="held-out clips to score on")
    parser.add_argument("--out", default="runs/kwise")
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = preset_for(args.env)
    pool, env = random_clips(args.env, args.pool, preset.clip_length, seed=1)
    test, _ = random_clips(args.env, args.test, preset.clip_length, seed=2)

    steps = LearnedReward.build(env.observation_space, env.action_space, use_action=preset.reward_uses_action)

    def features(clips):
        return torch.as_tensor(np.stack([steps.features(c.obs, c.actions) for c in clips]))

    feats, test_feats = features(pool), features(test)
    test_true = np.array([c.true_return for c in test])
    rows = []
    for n in args.queries:
        for seed in args.seeds:
            for condition in CONDITIONS:
                model = fit(condition, pool, feats, n, np.random.default_rng(seed), env, preset, seed)
                with torch.no_grad():
                    learned = model(test_feats.reshape(-1, test_feats.shape[-1])).reshape(len(test), -1).sum(1).numpy()
                acc, pairs = pair_accuracy(learned, test_true)
                _, rho = correlations(learned, test_true)
                rows.append({"queries": n, "seed": seed, "condition": condition, "pair_accuracy": acc,
                             "spearman": rho, "pairs": pairs})
                print(json.dumps(rows[-1]), flush=True)
    lines = [f"{args.env}: held-out pair accuracy of the learned reward (mean ± std over seeds "
             f"{', '.join(map(str, args.seeds))}; {args.test} random-policy test clips, "
             f"{rows[0]['pairs']:,} pairs with unequal returns)", ""]
    cells = []
    for n in args.queries:
        accs = [[r["pair_accuracy"] for r in rows if r["queries"] == n and r["condition"] == condition]
                for condition in CONDITIONS]
        cells.append([n, *(f"{np.mean(acc):.3f} ± {np.std(acc):.3f}" for acc in accs)])
    lines.append(markdown_table(["queries", *CONDITIONS], cells).rstrip("\n"))
    lines += ["", "K=3 PL minus K=3 split, paired by seed:"]
    for n in args.queries:
        pl = np.array([r["pair_accuracy"] for r in rows if r["queries"] == n and r["condition"] == "K=3 PL"])
        split = np.array([r["pair_accuracy"] for r in rows if r["queries"] == n and r["condition"] == "K=3 split"])
        d = pl - split
        lines.append(f"- {n} rankings: {d.mean():+.4f} (PL ahead on {int((d > 0).sum())} of {len(d)} seeds)")
    report = "\n".join(lines) + "\n"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.env}.md").write_text(report)
    (Path(args.out) / f"{args.env}.json").write_text(json.dumps(rows, indent=1))
    print(report)


if __name__ == "__main__":
    main()
