"""The reward CNN's two ways of running its members on a CPU, timed side by side in one run.

The ensemble's convolutions are grouped (one convolution with ``groups=M``); on a GPU they run that
way. On a CPU each member runs on its own slice of the same weights instead, with batch norm folded
into the convolutions out of training (``_MemberCNN._members_one_by_one``). This times both on this
machine: scoring one PPO rollout's frames (1,024 steps of 4×84×84, every member) as the agent's reward
is computed, and one training step of the ensemble on 16 pairs of 25-step clips (each member its own
800 frames), and prints the ratio (grouped time / one-by-one time; above 1: one by one is faster).

    python experiments/benchmark_reward_cnn.py --threads 1 2

With ``--bf16`` it times instead the ensemble's own path (``RewardEnsemble.raw``, under the memory
setting ``prefrl train`` makes) in float32 against bfloat16 autocast (weights and Adam stay float32;
the loss is taken in float32), the two taking turns ``--repeats`` times, and prints the median CPU
seconds of each and their ratio (float32 / bfloat16; above 1: bfloat16 is cheaper). CPU seconds,
not wall time, so that other work on the machine moves the figures less.

    python experiments/benchmark_reward_cnn.py --threads 1 --bf16 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from prefrl.reward_model import RewardEnsemble, RewardModelConfig


def timed(fn, repeats: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _model_and_frames() -> tuple[RewardEnsemble, torch.Tensor, torch.Tensor]:
    """The Atari reward ensemble (3 members, seeded), one rollout's frames (8 envs x 128 steps) and one
    training batch (each member its own 16 pairs of 25-step clips: 800 frames of 4x84x84)."""
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=4 * 84 * 84, use_action=False, arch="cnn",
                                             obs_shape=(4, 84, 84), dropout=0.0))
    rollout = torch.randint(0, 255, (1024, 4, 84, 84), dtype=torch.uint8)
    batch = torch.randint(0, 255, (3, 800, 4, 84, 84), dtype=torch.uint8)
    return model, rollout, batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bf16", action="store_true", help="float32 against bfloat16 autocast, instead")
    args = p.parse_args()
    if args.bf16:
        return precision(args.threads, args.repeats)
    model, rollout, batch = _model_and_frames()
    cnn = model.cnn
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


def precision(thread_counts: list[int], repeats: int) -> None:
    """float32 against bfloat16 autocast on the ensemble's own path, CPU seconds, taking turns."""
    from prefrl.build import keep_freed_memory

    keep_freed_memory()  # as prefrl train does: without it, page faults on each step's big tensors dominate
    model, rollout, batch = _model_and_frames()
    optimizer = torch.optim.Adam(model.parameters())

    def score(bf16: bool) -> None:  # in chunks of 128 frames, as the rollout scorer takes them
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            for chunk in rollout.split(128):
                model.raw(chunk).float()

    def train_step(bf16: bool) -> None:
        model.train()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            raw = model.raw(batch)
        returns = raw.float().reshape(3, 16, 2, 25).sum(-1)
        loss = torch.nn.functional.softplus(returns[..., 1] - returns[..., 0]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def cpu_seconds(fn, bf16: bool) -> float:
        start = time.process_time()
        fn(bf16)
        return time.process_time() - start

    print("| threads | work | float32 (CPU s) | bfloat16 (CPU s) | ratio |\n|---|---|---|---|---|")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for work, fn in (("score 1,024 frames in 128s, 3 members", score), ("train step, 3 x 800 frames", train_step)):
            for bf16 in (False, True):  # warm up
                fn(bf16)
            got = {False: [], True: []}
            for _ in range(repeats):
                for bf16 in (False, True):
                    got[bf16].append(cpu_seconds(fn, bf16))
            f32, b16 = statistics.median(got[False]), statistics.median(got[True])
            print(f"| {threads} | {work} | {f32:.3f} | {b16:.3f} | **{f32 / b16:.2f}** |", flush=True)


if __name__ == "__main__":
    main()
