"""Does a run's learned reward prefer what a better policy does? Score it on other policies' clips.

A learned reward can order its own labeled pairs well (high validation accuracy) and still not lead
PPO where the true reward does: if it ranks a stronger policy's behaviour below the agent's own, the
agent has no reason to go there. This scores one run's reward on fresh clips of several policies (the
run's own final policy, the final policy of a true-reward baseline run, a random one) and prints, per
source: mean true and learned return per clip, pair accuracy within the source and against the other
sources' clips, and the per-step correlation of learned and true reward (how well the reward says
*when* the score came, which PPO's credit assignment needs).

    python experiments/reward_on_policies.py RUN_DIR --baseline TRUE_RUN_DIR --clips 200

Policies are given as ``name=path.zip`` with ``--policy`` too (a checkpoint, say); ``random`` is
always there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from reward_fidelity import held_out_clips

from prefrl.compare import pair_accuracy
from prefrl.presets import preset_for
from prefrl.run_dir import RunDir


def score(run_dir: str, policies: dict[str, str | None], n_clips: int, seed: int) -> dict:
    run = RunDir(Path(run_dir))
    reward = run.reward(pessimism=0.0)
    env = run.config()["env"]
    from prefrl.envs import resolve

    spec = resolve(env)
    clip_length = preset_for(spec.name, spec.atari).clip_length
    per_source: dict[str, dict] = {}
    learned_all, true_all, source_all = [], [], []
    for k, (name, path) in enumerate(policies.items()):
        policy = None if path is None else run.load_policy(Path(path))
        clips = held_out_clips(env, policy, n_clips, clip_length, seed=seed + k)
        step_learned = np.concatenate([reward(c.obs, c.actions) for c in clips])
        step_true = np.concatenate([c.true_rewards for c in clips])
        learned = np.array([reward(c.obs, c.actions).sum() for c in clips])
        true = np.array([c.true_return for c in clips])
        accuracy, pairs = pair_accuracy(learned, true)
        scoring = step_true != 0
        per_source[name] = {
            "clips": len(clips), "true_per_clip": float(true.mean()), "learned_per_clip": float(learned.mean()),
            "pair_accuracy": accuracy, "pairs": pairs,
            "step_corr": float(np.corrcoef(step_learned, step_true)[0, 1]) if step_true.std() > 0 else None,
            "learned_at_score": float(step_learned[scoring].mean()) if scoring.any() else None,
            "learned_elsewhere": float(step_learned[~scoring].mean()),
        }
        learned_all.append(learned)
        true_all.append(true)
        source_all += [name] * len(clips)
    learned, true, source = np.concatenate(learned_all), np.concatenate(true_all), np.array(source_all)
    across = {}
    names = list(policies)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            # Pairs with one clip from each source only: does the reward order the two policies' clips?
            la, ta = learned[source == a], true[source == a]
            lb, tb = learned[source == b], true[source == b]
            dl = la[:, None] - lb[None, :]
            dt = ta[:, None] - tb[None, :]
            decided = dt != 0
            across[f"{a} vs {b}"] = {"pairs": int(decided.sum()),
                                     "pair_accuracy": float((np.sign(dl) == np.sign(dt))[decided].mean())
                                     if decided.any() else None}
    overall, pairs = pair_accuracy(learned, true)
    return {"run": str(run_dir), "per_source": per_source, "across": across,
            "pair_accuracy": overall, "pairs": pairs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--baseline", help="a true-reward run of the same env: its final policy is scored too")
    p.add_argument("--policy", nargs="*", default=[], metavar="NAME=PATH", help="more policies (zip files)")
    p.add_argument("--clips", type=int, default=200, help="clips per policy")
    p.add_argument("--seed", type=int, default=20_000)
    p.add_argument("--out", help="write the result as JSON here")
    args = p.parse_args()
    policies: dict[str, str | None] = {"random": None, "own final": str(Path(args.run_dir) / "policy.zip")}
    if args.baseline:
        policies["baseline final"] = str(Path(args.baseline) / "policy.zip")
    for item in args.policy:
        name, _, path = item.partition("=")
        if not path:
            p.error(f"--policy {item!r}: give NAME=PATH")
        policies[name] = path
    result = score(args.run_dir, policies, args.clips, args.seed)
    print("| policy | clips | true / clip | learned / clip | pair acc. within (pairs) | step corr. | "
          "learned at a score step | elsewhere |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in result["per_source"].items():
        acc = "n/a" if s["pair_accuracy"] is None else f"{s['pair_accuracy']:.3f}"
        corr = "n/a" if s["step_corr"] is None else f"{s['step_corr']:.3f}"
        at = "n/a" if s["learned_at_score"] is None else f"{s['learned_at_score']:+.4f}"
        print(f"| {name} | {s['clips']} | {s['true_per_clip']:.3f} | {s['learned_per_clip']:+.4f} | {acc} ({s['pairs']}) "
              f"| {corr} | {at} | {s['learned_elsewhere']:+.4f} |")
    for pair, s in result["across"].items():
        acc = "n/a" if s["pair_accuracy"] is None else f"{s['pair_accuracy']:.3f}"
        print(f"across {pair}: pair accuracy {acc} ({s['pairs']} pairs)")
    print(f"all clips: pair accuracy {result['pair_accuracy']:.3f} ({result['pairs']} pairs)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
