"""The language-model path's methods side by side: the rule's true score before (SFT) and after, and
the KL to the SFT model, over seeds, as markdown.

    python experiments/lm_table.py --seeds 0 1
    python experiments/lm_table.py --seeds 0 --extra ppo-k3:rank_size=3 ppo-ptx:ptx_coef=0.5

Runs whose ``summary.json`` exists under ``--out`` are read, not rerun.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness import parse_config

from prefrl.lm import LMRun, run_lm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--methods", nargs="+", default=["ppo", "dpo", "ipo", "kto"])
    parser.add_argument("--extra", nargs="*", default=[], help="NAME:key=value,... runs of LMRun (method ppo unless set)")
    parser.add_argument("--out", default="runs/lm")
    args = parser.parse_args()
    configs = {m: {"method": m} for m in args.methods}
    for item in args.extra:
        name, settings = parse_config(item)
        configs[name] = {"method": "ppo", **settings}
    lines = ["| run | seeds | accuracy on held-out preferences | true score, SFT | true score, final | KL to SFT (nats) | "
             "wall s |", "|---|---|---|---|---|---|---|"]
    for name, kwargs in configs.items():
        rows = []
        for seed in args.seeds:
            run_dir = Path(args.out) / f"{name}-s{seed}"
            path = run_dir / "summary.json"
            rows.append(json.loads(path.read_text()) if path.exists() else
                        run_lm(LMRun(seed=seed, run_dir=str(run_dir), **kwargs)))

        def cell(key, digits=3):
            values = [r[key] for r in rows if r.get(key) is not None]
            return " / ".join(f"{v:.{digits}f}" for v in values) if values else "—"

        acc = "rm_accuracy" if kwargs.get("method") == "ppo" else "implicit_reward_accuracy"
        lines.append(f"| {name} | {', '.join(map(str, args.seeds))} | {cell(acc)} | {cell('true_score_sft')} | "
                     f"{cell('true_score_final')} | {cell('kl_to_sft', 2)} | {cell('wall_seconds', 0)} |")
        print(lines[-1], flush=True)
    lines.append("")
    lines.append("Values are per seed, separated by /. Accuracy: the reward model's (ppo) or the implicit reward "
                 "β·log π/π_ref's (dpo, ipo) on held-out preferences; KTO's labels are unpaired.")
    report = "\n".join(lines) + "\n"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "table.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
