"""What a finished run's store says, written out: comparisons as JSONL (``prefrl export``) and
clip ratings with labeler agreement (``prefrl ratings``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import PrefrlError
from .ratings import bradley_terry_scores, elo, intransitive_triples, labeler_agreement
from .run_dir import RunDir, replacing, write_atomic
from .stats import correlations

__all__ = ["export", "import_labels", "ratings"]


def _open(run_dir: str | Path, store: str | None = None):
    """The run's store: its own, or the PostgreSQL one at ``store``."""
    return RunDir(run_dir).store(location=store)


def export(run_dir: str | Path, out: str | Path | None = None, clips: bool = False, store: str | None = None) -> dict:
    """Write ``comparisons.jsonl`` (one comparison a line: clip ids, status, preference = P(left
    better), source, labeler, times in Unix seconds) and ``clips.jsonl`` (id, length, true return,
    timestep) into ``out`` (default: the run directory); a run with K-wise feedback also gets
    ``rankings.jsonl`` (clip ids as shown, ranking = positions best first).

    With ``clips``, the clips themselves too: ``clips/clip_<id>.npz``, one compressed numpy archive
    a clip (``obs``, ``actions``, ``true_rewards``, and ``frames`` where the run stored them: the RGB
    frames people saw), each named in its ``clips.jsonl`` row under ``file``. Why ``.npz`` and not
    Parquet: numpy reads it anywhere with no new dependency, arrays keep their shape and dtype
    (stacked 84×84 uint8 Atari frames stay so, where Parquet would flatten them into lists), and a
    file a clip lets another tool load any subset of a large Atari export."""
    with _open(run_dir, store) as store:
        comparisons, clip_rows, rankings = store.comparison_records(), store.clip_records(), store.ranking_records()
        env = store.env
        out = Path(out or run_dir)
        if out.exists() and not out.is_dir():
            raise PrefrlError(f"--out {out} is a file: give a directory for comparisons.jsonl and clips.jsonl")
        out.mkdir(parents=True, exist_ok=True)
        if clips:
            (out / "clips").mkdir(exist_ok=True)
            ids = [row["id"] for row in clip_rows]
            for start in range(0, len(ids), 100):  # a hundred clips in memory at a time
                for clip in store.get_clips(ids[start:start + 100], frames=True):
                    _write_npz(out / "clips" / f"clip_{clip.clip_id}.npz", clip)
            clip_rows = [{**row, "file": f"clips/clip_{row['id']}.npz"} for row in clip_rows]
    files = [("comparisons.jsonl", comparisons), ("clips.jsonl", clip_rows)] + (
        [("rankings.jsonl", rankings)] if rankings else [])
    for name, rows in files:  # each whole or not at all: a full disk mid-write leaves the last export as it was
        write_atomic(out / name, "".join(json.dumps({**row, "env": env} if name == "clips.jsonl" else row) + "\n"
                                         for row in rows))
    return {"comparisons": len(comparisons), "clips": len(clip_rows), "rankings": len(rankings),
            "clip_arrays": len(clip_rows) if clips else 0, "out": str(out)}


def _write_npz(path: Path, clip) -> None:
    arrays = {"obs": clip.obs, "actions": clip.actions, "true_rewards": clip.true_rewards}
    if clip.frames is not None:
        arrays["frames"] = clip.frames
    with replacing(path) as partial:
        np.savez_compressed(partial, **arrays)


def import_labels(run_dir: str | Path, path: str | Path, labeler: str | None = None, store: str | None = None) -> dict:
    """Bring answered comparisons from a JSONL file into a run's store: one JSON object a line with
    ``left_id`` and ``right_id`` (clip ids of this store, as ``prefrl export`` writes them) and
    ``preference`` (1 left better, 0 right, 0.5 equal), and optionally ``labeler`` and ``labeled_at``
    (Unix seconds). Every line is checked before anything is written (one line naming the file and
    line if one is wrong), then all go in one commit; lines the store already holds are passed over.
    Rows of ``status`` other than ``labeled`` (an export's pending or skipped queries) are left out."""
    path = Path(path)
    if not path.is_file():
        raise PrefrlError(f"{path} is not a file: give a JSONL file of comparisons (as `prefrl export` writes)")
    rows, left_out = [], 0
    with _open(run_dir, store) as store:
        known = set(store.clip_ids())
        with path.open("rb") as f:
            for n, raw in enumerate(f, 1):
                where = f"{path} line {n}"
                try:
                    line = raw.decode("utf-8")
                    row = json.loads(line) if line.strip() else None
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise PrefrlError(f"{where} is not a JSON object of UTF-8 text ({type(exc).__name__}): fix or "
                                      "remove it; nothing was imported") from None
                if row is None:
                    continue
                if not isinstance(row, dict):
                    raise PrefrlError(f"{where} is not a JSON object; nothing was imported")
                if row.get("status", "labeled") != "labeled":
                    left_out += 1
                    continue
                missing = [k for k in ("left_id", "right_id", "preference") if k not in row]
                if missing:
                    raise PrefrlError(f"{where} lacks {', '.join(missing)}; nothing was imported")
                ids = (row["left_id"], row["right_id"])
                if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) or not set(ids) <= known:
                    raise PrefrlError(f"{where}: clip ids {list(ids)} are not clips of {run_dir}'s store (the ids "
                                      "are the store's own, as `prefrl export` writes them); nothing was imported")
                if row["preference"] not in (0, 0.5, 1) or isinstance(row["preference"], bool):
                    raise PrefrlError(f"{where}: preference {row['preference']!r} must be 1 (left better), 0 (right) "
                                      "or 0.5 (equal); nothing was imported")
                who = row.get("labeler") if labeler is None else labeler
                if who is not None and not isinstance(who, str):
                    raise PrefrlError(f"{where}: labeler {who!r} must be text; nothing was imported")
                at = row.get("labeled_at")
                if at is not None and not (isinstance(at, (int, float)) and not isinstance(at, bool)
                                           and math.isfinite(at)):
                    raise PrefrlError(f"{where}: labeled_at {at!r} must be Unix seconds; nothing was imported")
                rows.append({**row, "labeler": who})
        added, held = store.import_labels(rows)
        total = store.num_labels()
    return {"imported": added, "already_in_store": held, "not_answered_left_out": left_out, "labels_in_store": total}


def ratings(run_dir: str | Path, store: str | None = None) -> dict:
    """Score every labeled clip (Elo in label order, Bradley–Terry by maximum likelihood), list
    intransitive triples, and measure labeler agreement (with each other on shared pairs, and with
    the oracle, the clips' true returns). A K-wise ranking counts as its C(K,2) pairs, better over
    worse. Writes ``ratings.json`` in the run directory."""
    with _open(run_dir, store) as store:
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
