"""Steps/s of learned-reward PPO against true-reward PPO on one env, in one script run.

Reads top to bottom: config, the two runs, the ratio. Both runs use the same preset, steps and seed;
the learned run's time includes everything the preference loop adds inside PPO's ``learn``
(recording clips, asking labels, refitting the ensemble, relabeling each rollout).

    python experiments/benchmark_overhead.py --env cartpole
    python experiments/benchmark_overhead.py --env pong --steps 100000 --labels 541 --initial_labels 500

The overhead on Atari is mostly refitting the reward CNN, so it depends on how many labels arrive per
env step. The pong command asks them at the paper's rate: 500 on random-policy clips before RL (not
inside ``learn``), then 5,000 over 50M steps at a rate ∝ 5e6/(T + 5e6), of which the first 100k
steps get 5000·ln(1.02)/ln(11) ≈ 41. ``summary.json`` of the learned run splits the loop's time by
stage (``loop_seconds``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from prefrl.train import TrainConfig, train


@dataclass
class Config:
    env: str = "cartpole"
    """suite name or gymnasium id"""
    steps: int | None = None
    """PPO env steps (default: the preset)"""
    labels: int | None = None
    """label budget of the learned run (default: the preset)"""
    initial_labels: int | None = None
    """labels asked before RL (default: the preset's share)"""
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/benchmark"
    """where both runs and benchmark.json go"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Config()).items():
        parser.add_argument(f"--{name}", type=type(default) if default is not None else int, default=default)
    cfg = Config(**vars(parser.parse_args()))
    out = Path(cfg.out)
    summaries = {}
    for reward in ("true", "learned"):
        run = TrainConfig(cfg.env, reward=reward, steps=cfg.steps, labels=cfg.labels, initial_labels=cfg.initial_labels,
                          seed=cfg.seed, device=cfg.device, run_dir=str(out / f"{cfg.env}-{reward}-s{cfg.seed}"),
                          progress_bar=False)
        summaries[reward] = train(run)
    ratio = summaries["learned"]["steps_per_second"] / summaries["true"]["steps_per_second"]
    result = {"env": cfg.env, "seed": cfg.seed, "device": cfg.device, "steps_per_second_ratio": round(ratio, 3),
              **{f"{k}_{field}": s[field] for k, s in summaries.items()
                 for field in ("steps_per_second", "true_return_mean", "timesteps", "labels_used")},
              "learned_loop_seconds": summaries["learned"].get("loop_seconds")}
    (out / f"benchmark-{cfg.env}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"{cfg.env}: learned-reward PPO runs at {ratio:.2f}x the steps/s of true-reward PPO")


if __name__ == "__main__":
    main()
