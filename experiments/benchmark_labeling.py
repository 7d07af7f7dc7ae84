"""Speed of the labeling window: playback frame rate with two (or 3, 4) Atari clips, and label-to-commit time.

- Playback: the window's own loop (events, update, draw, flip) with the frame cap lifted, on two
  25-step Atari clips scaled ×4 (with ``--rank-size K``, a ranking's K clips); frames drawn per second.
- Label-to-commit: from the key event reaching the app to the label being committed to the store
  (SQLite, WAL, synchronous=FULL); and to the next pair being on screen (its clips loaded).

Uses SDL's dummy video driver unless a display is set (run it under Xvfb for a real window).

    python experiments/benchmark_labeling.py --store runs/fid4/pong-l1000-t100000-s0/store.sqlite
    xvfb-run -a python experiments/benchmark_labeling.py --rank-size 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
import pygame  # noqa: E402

from prefrl.clips import Clip  # noqa: E402
from prefrl.labeling_ui.app import LabelingApp  # noqa: E402
from prefrl.labeling_ui.session import LabelingSession  # noqa: E402
from prefrl.store import PreferenceStore  # noqa: E402


def _store(source: str | None, workdir: Path) -> PreferenceStore:
    path = workdir / "store.sqlite"
    if source:
        shutil.copy(source, path)
        return PreferenceStore(path)
    store = PreferenceStore(path, env="pong")
    rng = np.random.default_rng(0)
    frames = np.zeros((25, 4, 84, 84), np.uint8)
    clips = []
    for _ in range(600):  # pong-like: a grey field, two paddles and a ball that move
        f = frames.copy()
        f[:, :, 14:78, :] = 87
        f[:, :, rng.integers(14, 70):, 8:10] = 150
        clips.append(Clip(f, np.zeros(25, np.int64), np.zeros(25, np.float32)))
    store.add_clips(clips)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="a run's store to copy clips from (default: synthetic pong-like clips)")
    parser.add_argument("--frames", type=int, default=1200, help="frames to draw for the playback figure")
    parser.add_argument("--labels", type=int, default=200, help="labels to time")
    parser.add_argument("--rank-size", type=int, default=2, help="clips on screen: 2 (pairs), 3 or 4 (rankings)")
    parser.add_argument("--out", default=None, help="default: runs/benchmark_labeling[-rankK].json")
    args = parser.parse_args()
    video = os.environ.get("SDL_VIDEODRIVER") or f"x11 on {os.environ.get('DISPLAY')}"  # before SDL starts
    workdir = Path(tempfile.mkdtemp())
    try:
        store = _store(args.store, workdir)
        k = args.rank_size
        session = LabelingSession(store, "bench", store.env, new_pairs=True, rank_size=k)
        app = LabelingApp(session, clip_fps=15, display_fps=0)  # 0: no frame cap
        shape, window = [list(f.shape) for f in session.frames], list(app.size())
        start = time.perf_counter()
        app.run(max_frames=args.frames)
        playback_fps = app.frames_drawn / (time.perf_counter() - start)

        session = LabelingSession(store, "bench", store.env, new_pairs=True, rank_size=k)
        app = LabelingApp(session)
        committed: list[float] = []
        name = "record_labels" if k == 2 else "record_rankings"
        record = getattr(store, name)

        def timed_record(*a, **kw):
            record(*a, **kw)
            committed.append(time.perf_counter())

        setattr(store, name, timed_record)
        to_commit, to_next = [], []
        answers = (pygame.K_LEFT, pygame.K_RIGHT, pygame.K_DOWN)
        picks = [getattr(pygame, f"K_{n}") for n in range(1, k)]  # a ranking: the last pick commits it
        for n in range(args.labels):
            for key in picks[:-1] if k > 2 else []:
                app.handle_event(pygame.event.Event(pygame.KEYDOWN, key=key))
            t0 = time.perf_counter()
            app.handle_event(pygame.event.Event(pygame.KEYDOWN, key=picks[-1] if k > 2 else answers[n % 3]))
            t1 = time.perf_counter()
            to_commit.append(committed[-1] - t0)
            to_next.append(t1 - t0)
        session.quit()
        store.close()
        ms = lambda xs, q: round(1000 * float(np.quantile(xs, q)), 2)  # noqa: E731
        result = {
            "video_driver": video,
            "rank_size": k, "clip_frames": shape, "window": window, "playback_fps": round(playback_fps, 1),
            "frames_drawn": args.frames,
            "labels": args.labels,
            "label_to_commit_ms": {"median": ms(to_commit, 0.5), "p95": ms(to_commit, 0.95), "max": ms(to_commit, 1.0)},
            "label_to_next_pair_ms": {"median": ms(to_next, 0.5), "p95": ms(to_next, 0.95), "max": ms(to_next, 1.0)},
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = Path(args.out or f"runs/benchmark_labeling{'' if args.rank_size == 2 else f'-rank{args.rank_size}'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
