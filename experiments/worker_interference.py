"""How much a reward-model worker that trains without pause slows true-reward PPO beside it, when
the worker is a thread of PPO's process (as ``fit_async`` runs it) and when it is a process of its
own, both at the lowest CPU priority (nice 19, as ``fit_yield`` sets it) on one torch thread.

A thread shares PPO's interpreter lock: whenever the worker runs Python between its torch
operations, PPO's own Python (SB3's rollout loop, the callbacks) waits, and a nice-19 thread that
is descheduled holding the lock holds PPO up with it. A process shares only the cores. This runs
PPO on the true reward for ``--steps`` steps under each condition in turn, ``--repeats`` rounds
(none, thread, process, none, thread, process, ...), so the ratios compare runs of one sitting:

    python experiments/worker_interference.py --env pong --steps 16384 --repeats 2

The worker's load is the reward CNN's training step (3 members, 16 pairs of 25-step clips a batch,
forward, backward, Adam), on random frames; it counts the steps it made. Unlike ``fit_yield``'s
worker it does not wait during PPO's updates: a harsher load, the same in both conditions.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import threading
import time

import numpy as np


def _train_forever(stop, ready, counter) -> None:
    """The worker's load until ``stop`` is set; ``ready`` is set after its first step, ``counter`` (a
    shared value) counts steps."""
    import torch

    from prefrl.fitting import lowest_priority
    from prefrl.reward_model import RewardEnsemble, RewardModelConfig

    lowest_priority()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=4 * 84 * 84, use_action=False, arch="cnn",
                                             obs_shape=(4, 84, 84)))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    frames = torch.randint(0, 255, (3, 16 * 2 * 25, 4, 84, 84), dtype=torch.uint8)
    while not stop.is_set():
        returns = model.raw(frames).reshape(3, 16, 2, 25).sum(-1)
        loss = torch.nn.functional.softplus(returns[:, :, 1] - returns[:, :, 0]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ready.set()
        with counter.get_lock():
            counter.value += 1


def _ppo(env: str, steps: int, seed: int) -> float:
    from prefrl import TrainConfig, train

    with tempfile.TemporaryDirectory() as run_dir:
        summary = train(TrainConfig(env, seed=seed, run_dir=run_dir, progress_bar=False, reward="true",
                                    steps=steps, overrides={"vector_env": True, "eval_episodes": 1}))
    return summary["steps_per_second"]


def one(env: str, steps: int, seed: int, worker: str) -> dict:
    began = time.perf_counter()
    ctx = mp.get_context("spawn")  # its events and counter serve a thread as well as a process
    stop, ready, counter = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    side = {"thread": threading.Thread, "process": ctx.Process}.get(worker)
    if side is not None:
        side = side(target=_train_forever, args=(stop, ready, counter), daemon=True)
        side.start()
        ready.wait()  # the worker has made its first step: PPO starts beside a worker at work
    sps = _ppo(env, steps, seed)
    if side is not None:
        stop.set()
        side.join()
    made = counter.value
    return {"worker": worker, "ppo_steps_per_second": sps, "worker_steps": made,
            "seconds": round(time.perf_counter() - began, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="pong")
    p.add_argument("--steps", type=int, default=16384)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="a JSON-lines file the rows are appended to")
    args = p.parse_args()
    rows = []
    for r in range(args.repeats):
        for worker in ("none", "thread", "process"):
            row = {"round": r, **one(args.env, args.steps, args.seed, worker)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    base = np.median([r["ppo_steps_per_second"] for r in rows if r["worker"] == "none"])
    for worker in ("thread", "process"):
        mine = [r["ppo_steps_per_second"] for r in rows if r["worker"] == worker]
        steps = [r["worker_steps"] for r in rows if r["worker"] == worker]
        print(f"{worker}: PPO steps/s {np.median(mine):.1f} against {base:.1f} alone "
              f"(ratio {np.median(mine) / base:.3f}); worker steps {steps}")


if __name__ == "__main__":
    main()
