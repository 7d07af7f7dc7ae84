"""What a finished run's store says, written out: comparisons as JSONL (``prefrl export``) and
clip ratings with labeler agreement (``prefrl ratings``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import PrefrlError
from .ratings import bradley_terry_scores, elo, intransitive_triples, labeler_agreement
from .run_dir import RunDir, write_atomic
from .stats import correlations
from .store import PreferenceStore

__all__ = ["export", "ratings"]


def _open(run_dir: str | Path) -> PreferenceStore:
    return RunDir(run_dir).store()


def export(run_dir: str | Path, out: str | Path | None = None) -> dict:
    """Write ``comparisons.jsonl`` (one comparison a line: clip ids, status, preference = P(left
    better), source, labeler, times in Unix seconds) and ``clips.jsonl`` (id, length, true return,
    timestep) into ``out`` (default: the run directory); a run with K-wise feedback also gets
    ``rankings.jsonl`` (clip ids as shown, ranking = positions best first)."""
    with _open(run_dir) as store:
        comparisons, clips, rankings = store.comparison_records(), store.clip_records(), store.ranking_records()
        env = store.env
    out = Path(out or run_dir)
    if out.exists() and not out.is_dir():
        raise PrefrlError(f"--out {out} is a file: give a directory for comparisons.jsonl and clips.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    files = [("comparisons.jsonl", comparisons), ("clips.jsonl", clips)] + (
        [("rankings.jsonl", rankings)] if rankings else [])
    for name, rows in files:  # each whole or not at all: a full disk mid-write leaves the last export as it was
        write_atomic(out / name, "".join(json.dumps({**row, "env": env} if name == "clips.jsonl" else row) + "\n"
                                         for row in rows))
    return {"comparisons": len(comparisons), "clips": len(clips), "rankings": len(rankings), "out": str(out)}


def ratings(run_dir: str | Path) -> dict:
    """Score every labeled clip (Elo in label order, Bradley–Terry by maximum likelihood), list
    intransitive triples, and measure labeler agreement (with each other on shared pairs, and with
    the oracle, the clips' true returns). A K-wise ranking counts as its C(K,2) pairs, better over
    worse. Writes ``ratings.json`` in the run directory."""
    with _open(run_dir) as store:
        records = [r for r in store.comparison_records() if r["status"] == "labeled"]
        n_pairs, n_rankings = len(records), 0
        for r in store.ranking_records():
            if r["status"] == "labeled":
                n_rankings += 1
                ordered = [r["clip_ids"][i] for i in r["ranking"]]
                records += [{**r, "left_id": a, "right_id": b, "preference": 1.0}
                            for x, a in enumerate(ordered) for b in ordered[x + 1:]]
        true_return = {c["id"]: c["true_return"] for c in store.clip_records()}
    if not records:
        raise PrefrlError(f"{run_dir} has no labeled comparisons to rate: label some first (`prefrl label`)")
    records.sort(key=lambda r: (r["labeled_at"] or 0.0, r["id"]))
    prefs = [(r["left_id"], r["right_id"], r["preference"]) for r in records]
    elo_scores, bt = elo(prefs), bradley_terry_scores(prefs)
    oracle = {(a, b): 0.5 if true_return[a] == true_return[b] else float(true_return[a] > true_return[b])
              for a, b, _ in prefs}
    agreement = labeler_agreement([(r["labeler"], r["left_id"], r["right_id"], r["preference"]) for r in records],
                                  oracle)
    ids = sorted(bt)
    bt_values, true_values = np.array([bt[i] for i in ids]), np.array([true_return[i] for i in ids])
    _, spearman = correlations(bt_values, true_values)  # ranks with ties averaged: true returns tie often
    triples = intransitive_triples(prefs)
    result = {
        "labels": len(records), "of_them_pairs_from_rankings": len(records) - n_pairs, "rankings": n_rankings,
        "clips_rated": len(ids), "intransitive_triples": len(triples),
        "spearman_bt_vs_true_return": spearman, "agreement": agreement,
        "clips": [{"id": i, "elo": round(elo_scores[i], 1), "bt": round(bt[i], 4), "true_return": true_return[i]}
                  for i in sorted(ids, key=lambda i: -bt[i])],
        "triples": triples[:100],
    }
    write_atomic(Path(run_dir) / "ratings.json", json.dumps(result, indent=2))
    return {k: v for k, v in result.items() if k not in ("clips", "triples")}
