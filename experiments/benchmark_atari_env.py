"""Env steps/s and PPO steps/s of an Atari game on both paths, in one run: Python gymnasium envs in
SB3's DummyVecEnv (``prefrl.envs.make_atari``) and ale-py's C++ ``AtariVectorEnv``
(``prefrl.envs.atari_vector.AtariVecEnv``), as ``prefrl train`` builds them.

    python experiments/benchmark_atari_env.py --env pong --n-envs 8 --env-steps 4000 --ppo-steps 16384

Each path is timed alone, one after the other, in this process: random actions for the env figure,
true-reward PPO with the game's preset for the PPO figure (the learned reward adds the same work on
both paths). The ratios are vector / Python on this machine, in this run.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from harness import markdown_table
from stable_baselines3 import PPO

from prefrl.build import make_venv
from prefrl.envs import resolve
from prefrl.presets import preset_for


def env_steps_per_second(venv, steps: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    venv.reset()
    actions = rng.integers(0, venv.action_space.n, (steps, venv.num_envs))
    start = time.perf_counter()
    for a in actions:
        venv.step(a)
    return steps * venv.num_envs / (time.perf_counter() - start)


def ppo_steps_per_second(venv, steps: int, kwargs: dict) -> float:
    agent = PPO("CnnPolicy", venv, seed=0, device="cpu", verbose=0, **kwargs)
    start = time.perf_counter()
    agent.learn(steps)
    return agent.num_timesteps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="pong")
    p.add_argument("--n-envs", type=int, default=None, help="games at once (default: the preset's)")
    p.add_argument("--env-steps", type=int, default=4000, help="steps of every env, random actions")
    p.add_argument("--ppo-steps", type=int, default=16_384, help="PPO env steps (all envs together)")
    args = p.parse_args()
    spec = resolve(args.env)
    if not spec.atari:
        raise SystemExit(f"--env {args.env}: not an Atari game; use pong, breakout, ... or an ALE/<Game>-v5 id")
    preset = preset_for(spec.name, atari=True)
    n_envs, kwargs = preset.algo("ppo")
    n_envs = args.n_envs or n_envs
    rows, figures = [], {}
    for path, vector in (("Python (DummyVecEnv)", False), ("C++ (AtariVectorEnv)", True)):
        venv = make_venv(spec, n_envs, fixed_horizon=True, seed=0, vector=vector)
        env_rate = env_steps_per_second(venv, args.env_steps)
        ppo_rate = ppo_steps_per_second(venv, args.ppo_steps, kwargs)
        venv.close()
        figures[vector] = (env_rate, ppo_rate)
        rows.append([path, f"{env_rate:,.0f}", f"{ppo_rate:,.0f}"])
        print(f"{path}: {env_rate:,.0f} env steps/s, {ppo_rate:,.0f} PPO steps/s", flush=True)
    rows.append(["vector / Python", f"{figures[True][0] / figures[False][0]:.2f}x",
                 f"{figures[True][1] / figures[False][1]:.2f}x"])
    print(f"\n{spec.name}, {n_envs} envs, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads; "
          f"{args.env_steps} random steps per env, then true-reward PPO ({args.ppo_steps} steps, the preset's "
          f"settings):\n")
    print(markdown_table(["path", "env steps/s", "PPO steps/s"], rows))


if __name__ == "__main__":
    main()
