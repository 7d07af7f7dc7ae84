"""How fast the Atari reward CNN learns from a run's stored labels, per training recipe.

Loads the labeled comparisons of a finished run's store and trains a fresh ensemble on them epoch by
epoch, for several recipes (learning rate, batch size, initial L2, dropout), recording the held-out
accuracy (the run's own 1/e split) after each epoch, printed as ``epoch:validation/training`` (a gap
between the two is overfitting; both low, underfitting). Two label sets: the first ``--initial`` labels
(the random-policy clips asked before RL) and all of them. On a CPU the cost of a recipe is its
epochs (frames through the CNN), not its batch size, so the curves are per epoch.

    python experiments/rm_sweep.py runs/fidelity2/pong-l1000-t100000-s0/store.sqlite --epochs 30
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from prefrl.reward_model import RewardEnsemble, RewardModelConfig
from prefrl.reward_training import ComparisonBatch, EnsembleTrainer, is_validation
from prefrl.store import PreferenceStore

RECIPES = {
    "paper (lr 1e-3, batch 16)": {},
    "lr 3e-4": {"lr": 3e-4},
    "lr 3e-3": {"lr": 3e-3},
    "batch 64": {"batch_size": 64},
    "batch 64, lr 3e-3": {"batch_size": 64, "lr": 3e-3},
    "l2 init 1e-5": {"l2_init": 1e-5},
    "dropout 0.2": {"dropout": 0.2},
    "no dropout": {"dropout": 0.0},
    "no dropout, shift 4": {"dropout": 0.0, "augment_shift": 4},
    "dropout 0.5, shift 4": {"augment_shift": 4},
}
REPORT = (1, 2, 3, 5, 8, 12, 20, 30, 40, 60)


def load(store_path: str, device: str, max_labels: int = 0):
    store = PreferenceStore(store_path)
    comparisons = sorted(store.comparisons("labeled"), key=lambda c: c.id)[:max_labels or None]
    ids = sorted({i for c in comparisons for i in (c.left_id, c.right_id)})
    row = {clip_id: k for k, clip_id in enumerate(ids)}
    clips = torch.as_tensor(np.stack([c.obs for c in store.get_clips(ids)]), device=device)
    store.close()
    return comparisons, row, clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--initial", type=int, default=500)
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--sets", nargs="*", default=["initial", "all"], choices=["initial", "all"],
                        help="label sets to train on: the first --initial labels, all of them, or both")
    parser.add_argument("--max-labels", type=int, default=0, help="use only the first N labels (a smoke test)")
    parser.add_argument("--out", default=None, help="write the curves here as JSON")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    comparisons, row, clips = load(args.store, device, args.max_labels)
    ids = np.array([c.id for c in comparisons])
    left = torch.as_tensor([row[c.left_id] for c in comparisons], device=device)
    right = torch.as_tensor([row[c.right_id] for c in comparisons], device=device)
    pref = torch.as_tensor([c.preference for c in comparisons], dtype=torch.float32, device=device)
    batch = ComparisonBatch(left, right, pref, clips)
    order = np.argsort(ids)
    val_all = torch.as_tensor(np.flatnonzero(is_validation(ids)), device=device)
    results = {}
    for data in args.sets:
        keep = np.zeros(len(ids), bool)
        keep[order[:args.initial] if data == "initial" else order] = True
        train_idx = torch.as_tensor(np.flatnonzero(keep & ~is_validation(ids)), device=device)
        for name in args.recipes:
            recipe = dict(RECIPES[name])
            dropout = recipe.pop("dropout", 0.5)
            torch.manual_seed(0)
            model = RewardEnsemble(RewardModelConfig(int(np.prod(clips.shape[2:])), use_action=False, arch="cnn",
                                                     obs_shape=tuple(clips.shape[2:]), reward_std=0.05,
                                                     dropout=dropout)).to(device)
            trainer = EnsembleTrainer(model, epochs=1, batch_size=recipe.pop("batch_size", 16), stats_sample=4096,
                                      seed=0, **recipe)
            curve, start = {}, time.time()
            for epoch in range(1, args.epochs + 1):
                # Validation on the held-out labels of the whole run, so both label sets are scored alike.
                stats = trainer.train(batch.subset(train_idx), batch.subset(val_all))
                if epoch in REPORT or epoch == args.epochs:
                    curve[epoch] = (round(stats.val_accuracy, 3), round(stats.train_accuracy, 3))
            results[f"{data} | {name}"] = curve
            print(f"{data:>7} ({len(train_idx)} train, {len(val_all)} val) | {name:<26} | "
                  + " ".join(f"{e}:{v:.3f}/{t:.3f}" for e, (v, t) in curve.items()) + f" | {time.time() - start:.0f}s",
                  flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
