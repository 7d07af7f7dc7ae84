"""The per-refit diagnostics of one or more runs side by side, as one PNG.

    python experiments/plot_refits.py RUN_DIR [RUN_DIR ...] --titles "before" "after" --out docs/refits.png

For each run (a column), from its ``metrics.csv``:

1. the policy's true return (the plain game's episodes, and the true reward per step of each
   rollout scaled to the fixed horizon) with a line at every refit;
2. at each refit, the ensemble's accuracy on fresh pairs of the policy's recent clips (judged by true
   return) before and after the refit, and the validation accuracy on the held-out labels;
3. the correlation of learned and true return over those clips, before and after;
4. the mean and std of the learned reward PPO sees on the rollout, before and after.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read(run_dir: Path) -> dict[str, np.ndarray]:
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    keys = rows[0].keys()
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--titles", nargs="*", default=None)
    parser.add_argument("--horizon", type=int, default=500, help="fixed horizon, to scale reward per step to a return")
    parser.add_argument("--out", default="refits.png")
    args = parser.parse_args()
    runs = [Path(r) for r in args.runs]
    titles = args.titles or [r.name for r in runs]
    fig, axes = plt.subplots(4, len(runs), figsize=(6.5 * len(runs), 12), sharex="col", squeeze=False)
    for col, (run, title) in enumerate(zip(runs, titles)):
        m = read(run)
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
        t = m["timesteps"] / 1000
        refit = m.get("refit", np.zeros_like(t)) == 1
        ax = axes[0, col]
        ax.plot(t, m["true_episode_return"], label="true episode return (plain game)")
        per_step = m["rollout_true_reward"] * args.horizon
        ax.plot(t, np.convolve(per_step, np.ones(8) / 8, mode="same"), alpha=0.6,
                label=f"true reward/step × {args.horizon} (rollout, smoothed)")
        final = summary.get("true_return_mean")
        ax.set_title(title.replace("|", "\n") + (f"\nfinal true return {final:.0f}" if final is not None else ""),
                     fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_ylabel("true return")
        panels = [
            (1, [("pair_accuracy_before", "fresh pairs, before refit"), ("pair_accuracy_after", "fresh pairs, after"),
                 ("rm_val_accuracy", "held-out labels (1/e)")], "accuracy"),
            (2, [("clip_corr_before", "before refit"), ("clip_corr_after", "after")],
             "corr(learned, true) clip return"),
            (3, [("reward_mean_before", "mean, before"), ("reward_mean_after", "mean, after"),
                 ("reward_std_before", "std, before"), ("reward_std_after", "std, after")],
             "learned reward PPO sees"),
        ]
        for row, series, ylabel in panels:
            ax = axes[row, col]
            for key, label in series:
                if key in m:
                    marker = "o" if key.endswith("before") else ("s" if key.endswith("after") else ".")
                    ax.plot(t[refit], m[key][refit], marker=marker, label=label, alpha=0.8)
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=7)
        for ax in axes[:, col]:
            for x in t[refit]:
                ax.axvline(x, color="grey", alpha=0.15, lw=0.8)
        axes[-1, col].set_xlabel("env steps (k)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(args.out)


if __name__ == "__main__":
    main()
