"""imitation 1.0.1's preference comparisons beside prefrl on the same Pendulum budget, as one table.

    python experiments/imitation_pendulum.py --seeds 0 1 2 3 4

imitation pins its own gymnasium (0.29) and stable-baselines3 (2.2), so it runs in its own venv
(``--venv``, created on first use with ``pip install torch==2.13.0 imitation==1.0.1``); this script
calls itself there with ``--worker`` for each seed. The imitation side is its documented Pendulum
example (docs/tutorials/5_train_preference_comparisons.ipynb: the tuned PPO, reward net with running
input normalization, 100-step fragments, 10% of the comparisons up front, a hyperbolic query
schedule, 3 reward epochs, 4× for the first), with the notebook's "set to 60 for better
performance" iterations and the same budget as prefrl's pendulum preset: 200 comparisons over
150k agent steps asked of each. imitation's PPO rounds each of the 60 iterations up to whole
2,048-step rollouts, so its agent takes 249,856 steps (recorded as ``timesteps`` in each result),
1.65× prefrl's 151,552: the budget favours imitation. Each side's final policy, the one trained inside the loop, is scored on the plain
Pendulum-v1 over 10 deterministic episodes. Both sides' runs come from ``harness.run_all``: prefrl's
cached by the package's code version, imitation's by a hash of the code that makes them
(``imitation_run``, ``ensure_venv``, the budget: ``imitation_version``), so editing this text or
prefrl does not void them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from harness import Run, markdown_table, parser, run_all, source_hash

STEPS = 150_000
COMPARISONS = 200


def imitation_run(seed: int) -> dict:
    """One run of imitation's documented example (inside the imitation venv)."""
    import numpy as np
    import torch
    from imitation.algorithms import preference_comparisons
    from imitation.policies.base import FeedForward32Policy, NormalizeFeaturesExtractor
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.util.networks import RunningNorm
    from imitation.util.util import make_vec_env
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    import gymnasium as gym
    import imitation

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    start = time.time()
    rng = np.random.default_rng(seed)
    venv = make_vec_env("Pendulum-v1", rng=rng)
    reward_net = BasicRewardNet(venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm)
    fragmenter = preference_comparisons.RandomFragmenter(warning_threshold=0, rng=rng)
    gatherer = preference_comparisons.SyntheticGatherer(rng=rng)
    preference_model = preference_comparisons.PreferenceModel(reward_net)
    reward_trainer = preference_comparisons.BasicRewardTrainer(
        preference_model=preference_model, loss=preference_comparisons.CrossEntropyRewardLoss(), epochs=3, rng=rng)
    agent = PPO(policy=FeedForward32Policy,
                policy_kwargs=dict(features_extractor_class=NormalizeFeaturesExtractor,
                                   features_extractor_kwargs=dict(normalize_class=RunningNorm)),
                env=venv, seed=seed, n_steps=2048 // venv.num_envs, batch_size=64, ent_coef=0.01,
                learning_rate=2e-3, clip_range=0.1, gae_lambda=0.95, gamma=0.97, n_epochs=10)
    trajectory_generator = preference_comparisons.AgentTrainer(
        algorithm=agent, reward_fn=reward_net, venv=venv, exploration_frac=0.05, rng=rng)
    pref_comparisons = preference_comparisons.PreferenceComparisons(
        trajectory_generator, reward_net, num_iterations=60, fragmenter=fragmenter, preference_gatherer=gatherer,
        reward_trainer=reward_trainer, fragment_length=100, transition_oversampling=1, initial_comparison_frac=0.1,
        allow_variable_horizon=False, initial_epoch_multiplier=4, query_schedule="hyperbolic")
    pref_comparisons.train(total_timesteps=STEPS, total_comparisons=COMPARISONS)
    eval_env = Monitor(gym.make("Pendulum-v1"))
    eval_env.reset(seed=seed + 10_000)
    returns, _ = evaluate_policy(agent.policy, eval_env, n_eval_episodes=10, deterministic=True,
                                 return_episode_rewards=True)
    return {"seed": seed, "true_return_mean": float(np.mean(returns)), "true_return_std": float(np.std(returns)),
            "timesteps": int(agent.num_timesteps), "comparisons": len(pref_comparisons.dataset),
            "wall_seconds": round(time.time() - start, 1), "imitation": imitation.__version__}


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "imitation==1.0.1"], check=True)
    return python


def imitation_version() -> str:
    """A hash of what makes an imitation result: its run and venv code and the budget."""
    return source_hash(imitation_run, ensure_venv, f"{STEPS} {COMPARISONS}")


def imitation_job(run: Run, run_dir: str, python: str) -> dict:
    """The job of one imitation seed: :func:`imitation_run` in the imitation venv (this script with
    ``--worker``), its log beside the result."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    result = Path(run_dir) / "result.json"
    with (Path(run_dir) / "imitation.log").open("w") as log:  # imitation logs every iteration
        subprocess.run([python, __file__, "--worker", "--seeds", str(run.seed), "--result", str(result)],
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    return json.loads(result.read_text())


def main() -> None:
    p = parser(__doc__, out="runs/imitation", seeds=[0, 1, 2, 3, 4])
    p.add_argument("--venv", default="runs/imitation-venv")
    p.add_argument("--only-imitation", action="store_true", help="run and print imitation's side only")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        Path(args.result).write_text(json.dumps(imitation_run(args.seeds[0])))
        return
    python = ensure_venv(Path(args.venv))

    import numpy as np

    theirs = run_all([Run("imitation", "pendulum", s, {"steps": STEPS, "comparisons": COMPARISONS})
                      for s in args.seeds], args.out, args.workers, job=partial(imitation_job, python=str(python)),
                     version=imitation_version, ray=args.ray)
    if args.only_imitation:
        print(json.dumps(theirs, indent=2))
        return
    # The same runs as results_table.py's (the pendulum preset is 200 labels and 150k steps), so
    # they are shared through the cache.
    ours = run_all([Run(f"pendulum {reward}", "pendulum", s, {"reward": reward})
                    for reward in ("learned", "true") for s in args.seeds], "runs/sweep", args.workers, ray=args.ray)
    rows = []
    for name, results in (("imitation 1.0.1 (its documented example)", theirs),
                          ("prefrl, learned reward", [r for r in ours if r["label"] == "pendulum learned"]),
                          ("prefrl, true reward (same PPO)", [r for r in ours if r["label"] == "pendulum true"])):
        values = [r["true_return_mean"] for r in results]
        rows.append([name, f"{np.mean([r['timesteps'] for r in results]) / 1000:.0f}k", f"{np.mean(values):.1f}",
                     f"{min(values):.1f}", ", ".join(f"{v:.0f}" for v in values),
                     f"{np.mean([r['wall_seconds'] for r in results]):.0f}"])
    table = markdown_table([f"Pendulum-v1, {COMPARISONS} comparisons", "agent steps", "mean", "worst",
                            f"per seed ({', '.join(map(str, args.seeds))})", "wall s a run"], rows)
    (Path(args.out) / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
