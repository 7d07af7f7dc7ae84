"""The reward CNN's two ways of running its members on a CPU, timed side by side in one run.

The ensemble's convolutions are grouped (one convolution with ``groups=M``); on a GPU they run that
way. On a CPU each member runs on its own slice of the same weights instead, with batch norm folded
into the convolutions out of training (``_MemberCNN._members_one_by_one``). This times both on this
machine: scoring one PPO rollout's frames (1,024 steps of 4×84×84, every member) as the agent's reward
is computed, and one training step of the ensemble on 16 pairs of 25-step clips (each member its own
800 frames), and prints the ratio (grouped time / one-by-one time; above 1: one by one is faster).

    python experiments/benchmark_reward_cnn.py --threads 1 2
"""

from __future__ import annotations

import argparse
import time

import torch

from prefrl.reward_model import RewardEnsemble, RewardModelConfig


def timed(fn, repeats: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=4 * 84 * 84, use_action=False, arch="cnn",
                                             obs_shape=(4, 84, 84), dropout=0.0))
    cnn = model.cnn
    rollout = torch.randint(0, 255, (1024, 4, 84, 84), dtype=torch.uint8)
    batch = torch.randint(0, 255, (3, 800, 4, 84, 84), dtype=torch.uint8)
    optimizer = torch.optim.Adam(model.parameters())

    def score(path):
        model.eval()
        with torch.no_grad():
            path(rollout.float() / 255.0)

    def train_step(path):
        model.train()
        loss = path(batch.float() / 255.0).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    print("| threads | work | grouped (s) | one by one (s) | ratio |\n|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for work, fn in (("score 1,024 frames, 3 members", score), ("train step, 3 x 800 frames", train_step)):
            grouped = timed(lambda: fn(cnn._grouped), args.repeats)
            separate = timed(lambda: fn(cnn._members_one_by_one), args.repeats)
            print(f"| {threads} | {work} | {grouped:.3f} | {separate:.3f} | **{grouped / separate:.2f}** |")


if __name__ == "__main__":
    main()
