"""The language-model path's methods side by side: the rule's true score before (SFT) and after, and
the KL to the SFT model, over seeds, as markdown.

    python experiments/lm_table.py --seeds 0 1
    python experiments/lm_table.py --seeds 0 --methods ppo --extra ppo-k3:rank_size=3 ppo-ptx:ptx_coef=0.5

Each run is ``prefrl lm`` (:func:`prefrl.lm.run_lm`) made by ``harness.run_all``, cached by code
version: a rerun of the same code reads the runs it has, a rerun after a change of code runs again.
"""

from __future__ import annotations

from pathlib import Path

from harness import Run, markdown_table, parse_config, parser, run_all

from prefrl.lm import LMRun, run_lm


def lm_run(run: Run, run_dir: str) -> dict:
    """The job of one run: the language-model path with the run's settings (fields of LMRun)."""
    return run_lm(LMRun(seed=run.seed, run_dir=run_dir, **run.settings))


def render(results: list[dict], configs: dict[str, dict], seeds: list[int]) -> str:
    """A row per configuration; each cell every seed's value, separated by /."""
    rows = []
    for name, settings in configs.items():
        mine = [r for r in results if r["label"] == name]

        def cell(key: str, digits: int = 3) -> str:
            values = [r[key] for r in mine if r.get(key) is not None]
            return " / ".join(f"{v:.{digits}f}" for v in values) if values else "—"

        acc = "rm_accuracy" if settings.get("method") == "ppo" else "implicit_reward_accuracy"
        rows.append([name, ", ".join(map(str, seeds)), cell(acc), cell("true_score_sft"), cell("true_score_final"),
                     cell("kl_to_sft", 2), cell("wall_seconds", 0)])
    table = markdown_table(["run", "seeds", "accuracy on held-out preferences", "true score, SFT",
                            "true score, final", "KL to SFT (nats)", "wall s"], rows)
    return (table + "\nValues are per seed, separated by /. Accuracy: the reward model's (ppo) or the implicit "
            "reward β·log π/π_ref's (dpo, ipo) on held-out preferences; KTO's labels are unpaired.\n")


def main() -> None:
    p = parser(__doc__, out="runs/lm", seeds=[0, 1])
    p.add_argument("--methods", nargs="+", default=["ppo", "dpo", "ipo", "kto"])
    p.add_argument("--extra", nargs="*", default=[], help="NAME:key=value,... runs of LMRun (method ppo unless set)")
    args = p.parse_args()
    configs = {m: {"method": m} for m in args.methods}
    for item in args.extra:
        name, settings = parse_config(item)
        configs[name] = {"method": "ppo", **settings}
    runs = [Run(name, "lm", seed, settings) for name, settings in configs.items() for seed in args.seeds]
    report = render(run_all(runs, args.out, args.workers, job=lm_run, ray=args.ray), configs, args.seeds)
    (Path(args.out) / "table.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
