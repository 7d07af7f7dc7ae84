"""How well a run's learned reward orders held-out clips the way the game score does.

For each env and seed: one ``prefrl train`` run, then fresh clips rolled out from a mix of policies
(random, a mid-run checkpoint, the final policy) on new seeds, and over those clips:

- pair accuracy: over all pairs of clips whose true returns differ, the fraction the learned
  returns order the same way (not capped by ties, unlike rank correlations on sparse games);
- Spearman and Pearson correlation of learned and true clip returns.

    python experiments/reward_fidelity.py --envs pong breakout --labels 1000 --steps 100000
    python experiments/reward_fidelity.py --envs pong ALE/MsPacman-v5 --device cuda --workers 4 \
        --set fit_async=true reward_epochs=4 vector_env=true vector_threads=4

``--set`` replaces preset fields of every run (as ``prefrl train --set``). Each row also gives the
validation accuracy of the saved ensemble on its own held-out labels, and the labels it was fit on.

Prints a markdown table, a row per env and seed (also ``fidelity.md`` in ``--out``). Each run and
its scores are one job of ``harness.run_all``, cached by the code version and this script's
evaluation code: a rerun of the same code reads them, a rerun after a change of either runs again.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
from harness import Run, code_version, grid, markdown_table, parser, run_all
from prefrl.envs import make_env, resolve
from stable_baselines3.common.vec_env import DummyVecEnv

from prefrl import TrainConfig, train
from prefrl.clips import ClipRecorder
from prefrl.compare import pair_accuracy, ranks
from prefrl.config import parse_overrides
from prefrl.learned_reward import LearnedRewardVecEnv
from prefrl.presets import preset_for
from prefrl.run_dir import RunDir


def held_out_clips(env: str, policy, n_clips: int, clip_length: int, seed: int):
    venv = LearnedRewardVecEnv(DummyVecEnv([lambda: make_env(env) for _ in range(4)]))
    venv.seed(seed)
    venv.action_space.seed(seed)
    recorder = ClipRecorder(4, clip_length, capacity=n_clips)
    obs = venv.reset()
    while len(recorder.clips) < n_clips:
        for _ in range(clip_length):
            if policy is None:
                actions = np.array([venv.action_space.sample() for _ in range(4)])
            else:
                actions, _ = policy.predict(obs, deterministic=False)
            obs, _, _, _ = venv.step(actions)
        record = venv.drain()
        recorder.add_steps(record.obs, record.actions, record.true_rewards, record.dones, 0)
    venv.close()
    return list(recorder.clips)


def fidelity(run: Run, run_dir: str) -> dict:
    """The job of one row: train into ``run_dir/train``, then score its learned reward on held-out clips.
    Settings: ``labels``, ``steps``, ``reward_dropout`` (None: the preset's), ``clips_per_policy``."""
    spec = resolve(run.env)
    start = time.time()
    run_dir = Path(run_dir) / "train"
    summary = train(TrainConfig(run.env, labels=run.settings["labels"], steps=run.settings["steps"], seed=run.seed,
                                run_dir=str(run_dir), device=run.settings.get("device", "cpu"),
                                reward_dropout=run.settings["reward_dropout"], progress_bar=False,
                                query=run.settings.get("query", "disagreement"),
                                overrides=dict(run.settings.get("overrides", {}))))
    train_seconds = time.time() - start
    trained = RunDir(run_dir)
    reward = trained.reward(pessimism=0.0)
    clip_length = preset_for(spec.name, spec.atari).clip_length
    checkpoints = trained.checkpoints()
    policies = {"random": None, "final": trained.load_policy()}
    if checkpoints:
        policies["mid"] = trained.load_policy(checkpoints[len(checkpoints) // 2][1])
    learned, true, source = [], [], []
    for k, (name, policy) in enumerate(policies.items()):
        for clip in held_out_clips(run.env, policy, run.settings["clips_per_policy"], clip_length, seed=10_000 + k):
            learned.append(float(reward(clip.obs, clip.actions).sum()))
            true.append(clip.true_return)
            source.append(name)
    learned, true = np.array(learned), np.array(true)
    accuracy, n_pairs = pair_accuracy(learned, true)
    return {
        "env": spec.name, "labels": run.settings["labels"], "steps": run.settings["steps"], "seed": run.seed,
        "reward_dropout": reward.model.config.dropout,
        "n_clips": len(true), "clips_by_policy": {p: source.count(p) for p in policies},
        "pair_accuracy": None if accuracy is None else round(accuracy, 4), "n_pairs": n_pairs,
        "spearman_clip": round(float(np.corrcoef(ranks(learned), ranks(true))[0, 1]), 4),
        "pearson_clip": round(float(np.corrcoef(learned, true)[0, 1]), 4),
        "rm_val_accuracy": summary.get("rm_val_accuracy"), "rm_labels": summary.get("rm_labels"),
        "query": run.settings.get("query", "disagreement"),
        "overrides": run.settings.get("overrides", {}), "device": run.settings.get("device", "cpu"),
        "final_true_return": summary.get("true_return_mean"),
        "true_return_values": {str(v): int((true == v).sum()) for v in np.unique(true)},
        "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - start, 1),
    }


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    p = parser(__doc__, out="runs/fidelity", seeds=[0], envs=["pong"], workers=1)
    p.add_argument("--labels", type=int, default=1000)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--clips-per-policy", type=int, default=200)
    p.add_argument("--reward-dropout", type=float, default=None, help="Atari reward CNN dropout (default: the preset's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda: where PPO and the reward model run")
    p.add_argument("--query", default=None, choices=["random", "disagreement", "entropy", "optimistic"],
                   help="how queries are picked during RL (default: prefrl train's, disagreement)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="preset fields of every run, e.g. fit_async=true reward_epochs=4")
    args = p.parse_args()
    settings = {"labels": args.labels, "steps": args.steps, "reward_dropout": args.reward_dropout,
                "clips_per_policy": args.clips_per_policy}
    if args.device != "cpu":  # keys only where given, so the rows made before these options stay cached
        settings["device"] = args.device
    if args.query is not None:
        settings["query"] = args.query
    if args.overrides:
        settings["overrides"] = parse_overrides(args.overrides)
    # One run at a time takes every core (the reward CNN refits on the one the envs leave idle).
    runs = grid(args.envs, args.seeds, {"fidelity": settings}, threads=None if args.workers == 1 else 1)
    results = run_all(runs, args.out, args.workers, job=fidelity, version=partial(code_version, held_out_clips,
                                                                                    fidelity), ray=args.ray)
    table = markdown_table(["game", "seed", "pair accuracy (pairs)", "Spearman, clips", "Pearson, clips",
                            "validation accuracy (labels)", "wall time, all in"],
                           [[r["env"], r["seed"], f"**{_num(r['pair_accuracy'])}** ({r['n_pairs']:,})",
                             f"{r['spearman_clip']:.3f}", f"{r['pearson_clip']:.3f}",
                             f"{_num(r.get('rm_val_accuracy'))} ({r.get('rm_labels')})",
                             f"{r['total_seconds'] / 60:.1f} min"]
                            for r in results])
    (Path(args.out) / "fidelity.json").write_text(json.dumps(results, indent=2))
    (Path(args.out) / "fidelity.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
