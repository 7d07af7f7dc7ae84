"""glibc's default allocator against ``prefrl.build.keep_freed_memory``, timed side by side in one run.

Each measurement runs in a fresh process, the two settings taking turns, so that neither inherits the
other's heap. ``kept`` calls :func:`prefrl.build.keep_freed_memory` (what ``prefrl train`` does at
its start); ``system`` leaves glibc as it is (each allocation over 32 MB mapped on its own and
unmapped when freed, so every big tensor faults in fresh pages). Timed on the Atari reward CNN, as
the asynchronous fitter runs it, in a thread of its own:

- ``train``: one training step of the ensemble (3 members, each its own 16 pairs of 25-step clips:
  800 frames of 4x84x84), forward, backward and Adam;
- ``score``: the learned reward of one PPO rollout (8 envs x 128 steps = 1,024 frames, every member).

With ``--ppo-steps N`` it also runs ``prefrl train ENV --reward true --steps N`` under each setting
(the ``system`` one with ``GLIBC_TUNABLES`` naming a malloc tunable, which turns the setting off) and
compares PPO's own steps/s. Prints medians over ``--repeats`` processes each, their ratio
(system time / kept time: above 1, keeping freed memory is faster) and each setting's peak resident
memory.

    python experiments/benchmark_allocator.py --threads 1 2 --repeats 3 --ppo-steps 20000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SETTINGS = ("system", "kept")


def child(setting: str, what: str, threads: int, steps: int) -> dict:
    """One measurement in this (fresh) process: seconds per ``what``, the median of ``steps`` after a
    warm-up, and the process's peak resident memory."""
    if setting == "kept":
        from prefrl.build import keep_freed_memory

        if not keep_freed_memory():
            raise RuntimeError("keep_freed_memory did not apply here (not glibc, or malloc tuned already)")
    import resource

    import torch

    from prefrl.reward_model import RewardEnsemble, RewardModelConfig

    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=4 * 84 * 84, use_action=False, arch="cnn",
                                             obs_shape=(4, 84, 84), dropout=0.0))
    times: list[float] = []

    def work() -> None:  # in a thread, as the fitter's worker and the scorer run
        torch.set_num_threads(threads)
        if what == "train":
            frames = torch.randint(0, 255, (3, 800, 4, 84, 84), dtype=torch.uint8)
            optimizer = torch.optim.Adam(model.parameters())
            model.train()

            def once() -> None:
                loss = model.raw(frames).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        else:
            frames = torch.randint(0, 255, (1024, 4, 84, 84), dtype=torch.uint8)
            model.eval()

            def once() -> None:
                with torch.no_grad():
                    model.raw(frames)
        for i in range(steps + 1):
            start = time.perf_counter()
            once()
            if i:  # the first is a warm-up
                times.append(time.perf_counter() - start)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return {"seconds": statistics.median(times), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_process(setting: str, what: str, threads: int, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", setting, what, str(threads), str(steps)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ppo(setting: str, env: str, steps: int, seed: int) -> dict:
    """``prefrl train ENV --reward true``: its steps/s inside learn and its peak memory."""
    environ = dict(os.environ)
    if setting == "system":
        environ["GLIBC_TUNABLES"] = "glibc.malloc.tcache_count=7"  # glibc's default: only turns the setting off
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "prefrl", "train", env, "--reward", "true", "--steps", str(steps),
                        "--seed", str(seed), "--run-dir", f"{tmp}/run", "--no-progress"],
                       check=True, capture_output=True, text=True, env=environ)
        summary = json.loads(Path(tmp, "run", "summary.json").read_text())
    if summary["kept_freed_memory"] != (setting == "kept"):
        raise RuntimeError(f"the {setting} run has kept_freed_memory={summary['kept_freed_memory']}")
    return {"steps_per_second": summary["steps_per_second"], "peak_rss_mb": summary["peak_rss_mb"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3, help="processes of each setting, taking turns")
    p.add_argument("--steps", type=int, default=4, help="timed calls in each process, after one warm-up")
    p.add_argument("--ppo-steps", type=int, default=0, help="also time true-reward PPO for this many env steps")
    p.add_argument("--env", default="pong")
    args = p.parse_args()
    rows = []
    for what in ("train", "score"):
        for threads in args.threads:
            got = {s: [] for s in SETTINGS}
            for _ in range(args.repeats):
                for setting in SETTINGS:
                    got[setting].append(in_process(setting, what, threads, args.steps))
            med = {s: statistics.median(r["seconds"] for r in got[s]) for s in SETTINGS}
            rss = {s: max(r["peak_rss_mb"] for r in got[s]) for s in SETTINGS}
            rows.append(f"| {what} | {threads} | {med['system']:.3f} | {med['kept']:.3f} | "
                        f"**{med['system'] / med['kept']:.2f}** | {rss['system']:.0f} / {rss['kept']:.0f} |")
            print(rows[-1], flush=True)
    table = ["| reward CNN | torch threads | s, system | s, kept | ratio | peak MB, system / kept |",
             "|---|---|---|---|---|---|", *rows]
    if args.ppo_steps:
        got = {s: [] for s in SETTINGS}
        for seed in range(args.repeats):
            for setting in SETTINGS:
                got[setting].append(ppo(setting, args.env, args.ppo_steps, seed))
                print(setting, seed, got[setting][-1], flush=True)
        med = {s: statistics.median(r["steps_per_second"] for r in got[s]) for s in SETTINGS}
        rss = {s: max(r["peak_rss_mb"] for r in got[s]) for s in SETTINGS}
        table += ["", "| true-reward PPO | steps/s, system | steps/s, kept | ratio (kept / system) | peak MB, system / kept |",
                  "|---|---|---|---|---|",
                  f"| {args.env}, {args.ppo_steps} steps, seeds 0-{args.repeats - 1} | {med['system']:.1f} | "
                  f"{med['kept']:.1f} | **{med['kept'] / med['system']:.3f}** | {rss['system']:.0f} / {rss['kept']:.0f} |"]
    print("\n".join(table))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        setting, what, threads, steps = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(child(setting, what, threads, steps)))
    else:
        main()
