"""The GPU check for Atari preference-PPO, as one short script.

1. Reward-model training speed: seconds per gradient step of the paper's CNN ensemble (3 members,
   16 comparisons of two 25-step clips: 800 stacked 84×84 frames per member) on the GPU and on the
   CPU (all its cores, and 2 threads as on the 2-core development machine); the GPU-over-CPU speed-up.
2. Pong preference-PPO and true-reward PPO, same preset, steps and seed, on the GPU: steps/s of
   each inside PPO's ``learn`` (the learned run's figure includes everything the preference loop adds
   there: recording clips, asking labels, refitting the ensemble, relabeling each rollout) and their
   ratio; the wall-clock ratio too, which adds the 500 pre-training labels and the fit before RL.

Writes ``gpu_check.json`` in ``--out`` and prints it. On the device machine:

    python experiments/gpu_check.py --env pong --steps 100000 --out $OUT
    python experiments/gpu_check.py --env pong --steps 100000 --out $OUT --set fit_async=true vector_env=true

``--set FIELD=VALUE ...`` replaces preset fields in both runs (as ``prefrl train --set``): the
asynchronous fitter, the C++ vector env, more envs, for the GPU presets still to be chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from prefrl.reward_model import RewardEnsemble, RewardModelConfig
from prefrl.reward_training import ComparisonBatch, EnsembleTrainer
from prefrl import TrainConfig, train
from prefrl.config import parse_overrides


@dataclass
class Config:
    env: str = "pong"
    """an Atari suite name or ALE id"""
    steps: int = 100_000
    """PPO env steps of each run"""
    labels: int = 0
    """label budget of the preference run (0: the preset's)"""
    seed: int = 0
    rm_steps: int = 10
    """timed gradient steps of the reward model per device"""
    out: str = "runs/gpu_check"


def time_reward_training(device: str, steps: int, threads: int | None = None) -> float:
    """Seconds per gradient step of the CNN ensemble on ``device`` (one warm-up step first)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(4 * 84 * 84, use_action=False, arch="cnn", obs_shape=(4, 84, 84),
                                             reward_std=0.05)).to(device)
    trainer = EnsembleTrainer(model, batch_size=16)
    n = 16 * (steps + 1)
    clips = torch.randint(0, 256, (2 * n, 25, 4, 84, 84), dtype=torch.uint8, device=device)
    batch = ComparisonBatch(torch.arange(n, device=device), torch.arange(n, 2 * n, device=device),
                            (torch.rand(n, device=device) > 0.5).float(), clips)
    model.train()
    order = torch.randperm(n, device=device).reshape(steps + 1, 1, 16).expand(-1, 3, -1)
    trainer.step(batch, order[0])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for idx in order[1:]:
        trainer.step(batch, idx)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Config()).items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="preset fields for both runs, e.g. fit_async=true vector_env=true")
    args = vars(parser.parse_args())
    overrides = parse_overrides(args.pop("overrides"))
    cfg = Config(**args)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result: dict = {"env": cfg.env, "steps": cfg.steps, "seed": cfg.seed, "device": device, "overrides": overrides,
                    "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
                    "cpu_cores": os.cpu_count(), "torch": torch.__version__}

    def report(**figures) -> None:
        result.update(figures)
        (out / "gpu_check.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(figures), flush=True)

    cores = torch.get_num_threads()
    if device == "cuda":
        report(rm_step_seconds_gpu=round(time_reward_training("cuda", cfg.rm_steps), 4))
    report(rm_step_seconds_cpu_all=round(time_reward_training("cpu", max(2, cfg.rm_steps // 2), cores), 4),
           cpu_threads_all=cores)
    report(rm_step_seconds_cpu_2threads=round(time_reward_training("cpu", max(2, cfg.rm_steps // 4), 2), 4))
    torch.set_num_threads(cores)
    if device == "cuda":
        report(rm_speedup_gpu_over_cpu_all=round(result["rm_step_seconds_cpu_all"] / result["rm_step_seconds_gpu"], 1),
               rm_speedup_gpu_over_cpu_2threads=round(
                   result["rm_step_seconds_cpu_2threads"] / result["rm_step_seconds_gpu"], 1))

    summaries = {}
    for reward in ("true", "learned"):
        summaries[reward] = s = train(TrainConfig(
            cfg.env, reward=reward, steps=cfg.steps, labels=cfg.labels or None, seed=cfg.seed, device=device,
            run_dir=str(out / f"{cfg.env}-{reward}-s{cfg.seed}"), progress_bar=False, overrides=dict(overrides)))
        report(**{f"{reward}_{k}": s[k] for k in ("steps_per_second", "learn_seconds", "wall_seconds",
                                                  "true_return_mean", "labels_used", "rm_val_accuracy", "loop_seconds",
                                                  "pretrain_seconds", "final_fit_seconds")})
    t, lr = summaries["true"], summaries["learned"]
    report(steps_per_second_ratio=round(lr["steps_per_second"] / t["steps_per_second"], 3),
           wall_ratio=round(t["wall_seconds"] / lr["wall_seconds"], 3))
    print(f"{cfg.env} on {device}: learned-reward PPO runs at {result['steps_per_second_ratio']:.3f}x the steps/s "
          f"of true-reward PPO inside learn ({result['wall_ratio']:.3f}x counting pre-training and evaluation)")


if __name__ == "__main__":
    main()
