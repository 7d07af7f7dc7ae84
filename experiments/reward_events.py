"""What a run's learned reward says around the game's events: a point scored, a life lost.

PPO needs the learned reward to say *when* things happen, not just which clip is better. This plays
policies in the agent's own env (score hidden, game over hidden), scores every step with the run's
learned reward, and prints the learned reward averaged over the steps at a fixed offset from each
event (a point scored: true reward > 0; a life lost: ALE's life counter falls), against its mean
over all steps, in units of its std over all steps. A reward that tracks the score has a peak at or
just before a point; one that hates losing lives dips before a life is lost.

    python experiments/reward_events.py RUN_DIR --policy "own=RUN_DIR/policy.zip" \\
        --policy "true-reward run=TRUE_RUN/policy.zip" --steps 4000

``random`` is always played too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from prefrl.envs import make_env
from prefrl.learned_reward import LearnedRewardVecEnv
from prefrl.run_dir import RunDir

OFFSETS = list(range(-12, 5))


def play(env_id: str, policy, steps: int, n_envs: int, seed: int) -> dict[str, np.ndarray]:
    """(n_envs, steps) arrays of the observations' learned-reward inputs, true rewards and lives."""
    venv = LearnedRewardVecEnv(DummyVecEnv([lambda: make_env(env_id) for _ in range(n_envs)]))
    venv.seed(seed)
    venv.action_space.seed(seed)
    obs = venv.reset()
    frames, actions, true, lives = [], [], [], []
    for _ in range(steps):
        if policy is None:
            act = np.array([venv.action_space.sample() for _ in range(n_envs)])
        else:
            act, _ = policy.predict(obs, deterministic=False)
        obs, _, _, _ = venv.step(act)
        record = venv.drain()  # the step as the learned reward scores it during training
        frames.append(record.obs[-1])
        actions.append(record.actions[-1])
        true.append(record.true_rewards[-1])
        lives.append([e.unwrapped.ale.lives() for e in venv.venv.envs])
    venv.close()
    return {"obs": np.stack(frames, 1), "actions": np.stack(actions, 1), "true": np.stack(true, 1),
            "lives": np.stack(lives, 1)}


def aligned(learned: np.ndarray, events: np.ndarray) -> dict[int, float | None]:
    """The mean of ``learned`` (n, T) at each offset from the steps where ``events`` (n, T) is set."""
    out = {}
    for off in OFFSETS:
        values = [learned[i, t + off] for i, t in zip(*np.nonzero(events)) if 0 <= t + off < learned.shape[1]]
        out[off] = round(float(np.mean(values)), 3) if values else None
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--policy", action="append", default=[], help="NAME=path.zip (repeatable)")
    p.add_argument("--steps", type=int, default=3000, help="steps per env")
    p.add_argument("--envs", type=int, default=4)
    p.add_argument("--seed", type=int, default=20_000)
    p.add_argument("--out", default=None, help="write the figures here as JSON too")
    args = p.parse_args()
    run = RunDir(Path(args.run_dir))
    reward = run.reward(pessimism=0.0)
    env_id = run.config()["env"]
    policies = {"random": None, **{n: PPO.load(path, device="cpu") for n, path in
                                   (item.split("=", 1) for item in args.policy)}}
    results = {}
    for k, (name, policy) in enumerate(policies.items()):
        rec = play(env_id, policy, args.steps, args.envs, args.seed + k)
        learned = np.stack([reward(o, a) for o, a in zip(rec["obs"], rec["actions"])])
        z = (learned - learned.mean()) / learned.std()
        points = rec["true"] > 0
        lost = np.zeros_like(points)  # the step during which the life counter fell
        lost[:, 1:] = rec["lives"][:, 1:] < rec["lives"][:, :-1]
        results[name] = {
            "steps": int(learned.size), "points": int(points.sum()), "lives_lost": int(lost.sum()),
            "true_per_step": round(float(rec["true"].mean()), 4),
            "learned_mean": round(float(learned.mean()), 4), "learned_std": round(float(learned.std()), 4),
            "step_corr": round(float(np.corrcoef(learned.ravel(), rec["true"].ravel())[0, 1]), 3),
            "z_at_point": aligned(z, points), "z_at_life_lost": aligned(z, lost),
        }
        r = results[name]
        print(f"\n{name}: {r['steps']} steps, {r['points']} scoring steps, {r['lives_lost']} lives lost, true/step "
              f"{r['true_per_step']}, learned mean {r['learned_mean']} std {r['learned_std']}, step corr {r['step_corr']}")
        for event in ("z_at_point", "z_at_life_lost"):
            print(f"  {event:15s}" + " ".join(f"{off:+d}:{v:+.2f}" if v is not None else f"{off:+d}:  -  "
                                             for off, v in r[event].items()))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
