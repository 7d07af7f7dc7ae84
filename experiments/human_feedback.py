"""`prefrl train ENV --feedback human` with scripted labelers going through the UI's code path.

Each labeler is its own process, as each `prefrl label` window would be, running a
:class:`~prefrl.labeling_ui.scripted.ScriptedLabeler` with its own store connection and labeling
session: it reads the pair on screen, answers as the oracle would, and presses the key into the
app's event handler. With several labelers, the store's claims keep them on different pairs. Prints
the run's summary and each labeler's count.

    python experiments/human_feedback.py --env cartpole --labelers 2 --delay 0.05
    PGPASSWORD=... python experiments/human_feedback.py --env cartpole --store postgresql://USER@127.0.0.1:PORT/DB

With ``--store URL`` the run's clips and labels live on that PostgreSQL server, and each labeler
process connects to it over TCP, as windows on other machines would (``prefrl label --store URL``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # the labelers render classic-control clips off screen
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from prefrl.labeling_ui.scripted import ScriptedLabeler
from prefrl.stores import open_store
from prefrl import TrainConfig, train


def _label(store_path: str, name: str, delay: float, stop) -> None:
    labeler = ScriptedLabeler(store_path, labeler=name, delay=delay)
    labeler.start()
    stop.wait()
    labeler.stop()
    if labeler.error is not None:
        raise labeler.error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--labels", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labelers", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds each labeler takes per answer")
    parser.add_argument("--out", default="runs/human_feedback")
    parser.add_argument("--store", default=None, metavar="URL", help="a PostgreSQL store (default: the run's file)")
    args = parser.parse_args()
    run = Path(args.out) / f"{args.env}-s{args.seed}"
    names = [f"script{k}" for k in range(args.labelers)]
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    location = args.store or str(run / "store.sqlite")
    labelers = [ctx.Process(target=_label, args=(location, name, args.delay, stop)) for name in names]
    for labeler in labelers:
        labeler.start()
    try:
        summary = train(TrainConfig(args.env, labels=args.labels, steps=args.steps, seed=args.seed, run_dir=str(run),
                                    feedback="human", progress_bar=False, store=args.store))
    finally:
        stop.set()
        for labeler in labelers:
            labeler.join()
    with open_store(location, create=False) as store:
        comparisons = store.comparisons()
    by_labeler = {name: sum(c.labeler == name for c in comparisons) for name in names}
    pairs = [(c.left_id, c.right_id) for c in comparisons]
    result = {**{k: summary[k] for k in ("env", "seed", "timesteps", "labels_used", "true_return_mean",
                                         "true_return_std", "wall_seconds", "steps_per_second")},
              "store": "postgresql" if args.store else "sqlite",
              "answers_by_labeler": by_labeler, "pending_at_end": sum(c.status == "pending" for c in comparisons),
              "repeated_pairs": len(pairs) - len(set(pairs))}
    (run / "human_feedback.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
