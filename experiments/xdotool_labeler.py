"""`prefrl train ENV --feedback human` labeled through the real window: keys pressed by xdotool.

Starts Xvfb, `prefrl train ENV --feedback human` and `prefrl label` on its run in a real X window.
A script plays the person: it reads which pair the window has claimed (the store's claim, read-only),
decides as the oracle teacher does (the clip with the higher true return is better; equal returns
are a tie) and presses Left, Right or Down in the window with xdotool, as a person's keyboard
would, never through the app's event handler. Prints the run's summary and the answers given.

    python experiments/xdotool_labeler.py --env cartpole --seed 0
    PYTHONPATH=docs/examples python experiments/xdotool_labeler.py --env my_envs:SlowPole-v0 \
        --train "--labels 20 --steps 8192" --screenshot runs/window_user_env.png

Needs Debian's xvfb and xdotool.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def _pending_on_screen(store: Path, labeler: str) -> tuple[int, float, float] | None:
    """The pair the window shows: (comparison id, left and right true returns), from its claim."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(
            "SELECT c.id, l.true_return, r.true_return FROM comparisons c JOIN clips l ON l.id = c.left_id "
            "JOIN clips r ON r.id = c.right_id WHERE c.status = 'pending' AND c.claimed_by = ? ORDER BY c.id LIMIT 1",
            (labeler,)).fetchone()
    except sqlite3.OperationalError:  # the store is still being created
        return None
    finally:
        db.close()


def _status(store: Path, comparison: int) -> str:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT status FROM comparisons WHERE id = ?", (comparison,)).fetchone()[0]
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/xdotool_labeler")
    parser.add_argument("--train", default="", help="more `prefrl train` options, e.g. \"--labels 20 --steps 8192\"")
    parser.add_argument("--screenshot", default=None, help="a PNG of the screen as the first pair plays")
    args = parser.parse_args()
    run = Path(args.out) / f"{args.env.replace(':', '_').replace('/', '_')}-s{args.seed}"
    if run.exists():
        sys.exit(f"{run} exists: remove it or give another --out")
    store = run / "store.sqlite"
    labeler = "xdotool"
    display = ":" + str(next(n for n in range(400, 600) if not Path(f"/tmp/.X{n}-lock").exists()))
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {k: v for k, v in os.environ.items() if k != "SDL_VIDEODRIVER"}
    env["DISPLAY"] = display
    x = lambda *a: subprocess.run(["xdotool", *a], env=env, capture_output=True, text=True, timeout=60).stdout  # noqa: E731
    run.parent.mkdir(parents=True, exist_ok=True)
    train_log = run.parent / f"{run.name}.train.log"
    trainer = subprocess.Popen([sys.executable, "-m", "prefrl", "train", args.env, "--feedback", "human", "--seed",
                                str(args.seed), "--run-dir", str(run), "--no-progress", *args.train.split()],
                               stdout=train_log.open("w"), stderr=subprocess.STDOUT, text=True)
    window_proc = None
    pressed = repeats = 0
    start = time.time()
    try:
        while not store.exists():
            time.sleep(0.2)
        time.sleep(1.0)
        window_proc = subprocess.Popen([sys.executable, "-m", "prefrl", "label", str(run), "--labeler", labeler],
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        window = ""
        while not window:
            window = x("search", "--onlyvisible", "--pid", str(window_proc.pid)).strip().split("\n")[0]
            time.sleep(0.2)
        time.sleep(3.0)  # the window's loop running (a key sent as it starts may be lost)
        x("windowfocus", "--sync", window)
        x("key", "--clearmodifiers", "Return")  # a new labeler sees the help screen first: close it
        time.sleep(1.0)
        # One key per pair. A key that brought no answer in 5 s (on a fresh X server the first one
        # can be lost) is pressed again, as a person would; were the first one only slow, the
        # repeat would answer the next pair, and the count of answers unlike the oracle's shows it.
        while trainer.poll() is None:
            shown = _pending_on_screen(store, labeler)
            if shown is None:
                time.sleep(0.05)
                continue
            comparison, left, right = shown
            if args.screenshot and not pressed:
                time.sleep(1.5)  # a few frames of the pair played
                subprocess.run(["import", "-window", "root", args.screenshot], env=env, check=True, timeout=60)
            key = "Left" if left > right else "Right" if right > left else "Down"
            for attempt in range(12):
                x("windowfocus", "--sync", window)
                x("key", "--clearmodifiers", key)
                pressed += 1
                repeats += attempt > 0
                for _ in range(250):  # polls, 0.02 s apart
                    if trainer.poll() is not None or _status(store, comparison) != "pending":
                        break
                    time.sleep(0.02)
                else:
                    continue
                break
            else:
                raise RuntimeError(f"key {key} for comparison {comparison} brought no answer in a minute")
        x("windowfocus", "--sync", window)
        x("key", "q")
        window_out, window_err = window_proc.communicate(timeout=60)
    finally:
        for proc in (trainer, window_proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
        xvfb.terminate()
    train_out = train_log.read_text()
    summary = json.loads((run / "summary.json").read_text())
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    by = dict(db.execute("SELECT labeler, COUNT(*) FROM comparisons WHERE status != 'pending' GROUP BY labeler"))
    # every stored answer against the oracle's on the same pair: a key that landed on another pair shows here
    stored = db.execute("SELECT c.preference, l.true_return, r.true_return FROM comparisons c JOIN clips l ON "
                        "l.id = c.left_id JOIN clips r ON r.id = c.right_id WHERE c.status = 'labeled'").fetchall()
    db.close()
    unlike_oracle = sum(p != (1.0 if a > b else 0.0 if b > a else 0.5) for p, a, b in stored)
    result = {**{k: summary[k] for k in ("env", "seed", "labels_used", "true_return_mean", "true_return_std",
                                         "wall_seconds")},
              "keys_pressed_by_xdotool": pressed, "repeated_keys": repeats, "answers_by_labeler": by, "answers_unlike_the_oracle": unlike_oracle, "window_said": window_out.strip(),
              "window_returncode": window_proc.returncode, "traceback": "Traceback" in window_err + train_out,
              "seconds": round(time.time() - start, 1)}
    (run / "xdotool_labeler.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
