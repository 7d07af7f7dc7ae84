"""How well a run's learned reward orders held-out clips the way the game score does.

Trains (or reuses) one ``prefrl train`` run, then rolls out fresh clips from a mix of policies
(random, a mid-run checkpoint, the final policy) on new seeds, and reports over those clips:

- pair accuracy: over all pairs of clips whose true returns differ, the fraction the learned
  returns order the same way (not capped by ties, unlike rank correlations on sparse games);
- Spearman and Pearson correlation of learned and true clip returns.

    python experiments/reward_fidelity.py --env pong --labels 1000 --steps 100000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from prefrl.clips import ClipRecorder
from prefrl.compare import pair_accuracy, ranks
from prefrl.envs import make_env, resolve
from prefrl.learned_reward import LearnedRewardVecEnv
from prefrl.presets import preset_for
from prefrl.reward_model import RewardEnsemble, step_features
from prefrl.train import TrainConfig, load_policy, train


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="pong")
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips-per-policy", type=int, default=200)
    parser.add_argument("--reward-dropout", type=float, default=None, help="Atari reward CNN dropout (default: the preset's)")
    parser.add_argument("--out", default="runs/fidelity")
    args = parser.parse_args()
    spec = resolve(args.env)
    tag = "" if args.reward_dropout is None else f"-d{args.reward_dropout:g}"
    run_dir = Path(args.out) / f"{spec.name}-l{args.labels}-t{args.steps}-s{args.seed}{tag}"
    start = time.time()
    if not (run_dir / "summary.json").exists():
        train(TrainConfig(args.env, labels=args.labels, steps=args.steps, seed=args.seed, run_dir=str(run_dir),
                          device="cpu", reward_dropout=args.reward_dropout, progress_bar=False))
    train_seconds = time.time() - start
    model = RewardEnsemble.load(run_dir).eval()
    clip_length = preset_for(spec.name, spec.atari).clip_length
    checkpoints = sorted((run_dir / "checkpoints").glob("policy_*_steps.zip"),
                         key=lambda p: int(p.stem.split("_")[1]))
    policies = {"random": None, "final": load_policy(run_dir, run_dir / "policy.zip")}
    if checkpoints:
        policies["mid"] = load_policy(run_dir, checkpoints[len(checkpoints) // 2])
    learned, true, source = [], [], []
    probe = make_env(args.env)
    for k, (name, policy) in enumerate(policies.items()):
        for clip in held_out_clips(args.env, policy, args.clips_per_policy, clip_length, seed=10_000 + k):
            x = step_features(clip.obs, clip.actions, probe.observation_space, probe.action_space,
                              model.config.use_action, flatten=model.config.arch == "mlp")
            with torch.no_grad():
                learned.append(float(model(torch.as_tensor(x)).sum()))
            true.append(clip.true_return)
            source.append(name)
    learned, true = np.array(learned), np.array(true)
    accuracy, n_pairs = pair_accuracy(learned, true)
    result = {
        "env": spec.name, "labels": args.labels, "steps": args.steps, "seed": args.seed,
        "reward_dropout": model.config.dropout,
        "n_clips": len(true), "clips_by_policy": {p: source.count(p) for p in policies},
        "pair_accuracy": round(accuracy, 4), "n_pairs": n_pairs,
        "spearman_clip": round(float(np.corrcoef(ranks(learned), ranks(true))[0, 1]), 4),
        "pearson_clip": round(float(np.corrcoef(learned, true)[0, 1]), 4),
        "true_return_values": {str(v): int((true == v).sum()) for v in np.unique(true)},
        "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - start, 1),
    }
    (run_dir / "fidelity.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
