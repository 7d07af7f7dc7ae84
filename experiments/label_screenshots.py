"""Screenshots of the labeling window in each of its modes, taken in a real X window (Xvfb) with
keys sent by xdotool, for docs/labeling.md.

    python experiments/label_screenshots.py [--out docs/img]

Needs Debian's xvfb, xdotool and imagemagick (`import`). Each shot is of a small store made here
from random clips (cartpole and pong), opened with `prefrl label` as a labeler would open it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from prefrl.clips import Clip
from prefrl.store import PreferenceStore

OBS_DIM = {"cartpole": 4}


def _store(run: Path, env: str, n: int = 6, k: int = 2) -> None:
    rng = np.random.default_rng(0)
    clips = []
    if env == "pong":
        from prefrl.envs import make_env

        pong = make_env("pong", render_mode="rgb_array")
        pong.reset(seed=0)
        pong.action_space.seed(0)
        for _ in range(100):  # past the serve
            pong.step(pong.action_space.sample())
    for _ in range(k * n):
        frames = None
        if env == "pong":  # 25 steps of a random policy, with the colour screen a human-feedback run records
            steps = []
            for _ in range(25):
                steps.append((pong.step(pong.action_space.sample())[0], pong.render()))
            obs = np.stack([o for o, _ in steps])
            frames = np.stack([f for _, f in steps])
        else:  # a cart that drifts and a pole that tips, so the two clips differ
            t = np.linspace(0, 1, 50)[:, None]
            obs = (np.array([[rng.uniform(-1, 1), 0, rng.uniform(-0.15, 0.15), 0]]) * t).astype(np.float32)
        clips.append(Clip(obs, np.zeros(len(obs), np.int64), np.zeros(len(obs), np.float32), frames))
    run.mkdir(parents=True)
    with PreferenceStore(run / "store.sqlite", env=env) as store:
        ids = store.add_clips(clips)
        if k == 2:
            store.add_queries([(ids[2 * q], ids[2 * q + 1]) for q in range(n)], source="human")
        else:
            store.add_ranking_queries([tuple(ids[k * q:k * (q + 1)]) for q in range(n)], source="human")


def _x(display: str, *args: str) -> str:
    return subprocess.run(args, env={**os.environ, "DISPLAY": display}, capture_output=True, text=True,
                          timeout=60).stdout


def _shot(display: str, window: str, path: Path, wait: float = 1.5) -> None:
    time.sleep(wait)  # the keys handled and frames drawn (the first pair's rendering takes a while)
    _x(display, "import", "-window", window, str(path))
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/img")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    display = ":" + str(next(n for n in range(120, 400) if not Path(f"/tmp/.X{n}-lock").exists()))
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        with tempfile.TemporaryDirectory() as tmp:
            for env, k, shots in (("cartpole", 2, ("help", "pair", "slow")), ("pong", 2, ("pair",)),
                                  ("cartpole", 3, ("rank",))):
                run = Path(tmp) / f"{env}{k}"
                _store(run, env, k=k)
                env_vars = {k: v for k, v in os.environ.items() if k != "SDL_VIDEODRIVER"}
                proc = subprocess.Popen([sys.executable, "-m", "prefrl", "label", str(run), "--labeler", "ann"],
                                        env={**env_vars, "DISPLAY": display})
                window = ""
                for _ in range(150):
                    window = _x(display, "xdotool", "search", "--onlyvisible", "--classname", "prefrl").strip()
                    if window:
                        break
                    time.sleep(0.2)
                window = window.split()[0]
                _x(display, "xdotool", "windowfocus", "--sync", window)
                if "help" in shots:
                    _shot(display, window, out / f"label_{env}_help.png", wait=4.0)
                if "rank" in shots:  # close the help, rank one group, place the best of the next
                    _x(display, "xdotool", "key", "Return", "2", "1", "3")
                    _shot(display, window, out / f"label_{env}_rank{k}.png", wait=4.0)
                else:
                    _x(display, "xdotool", "key", "Return", "Left")  # close the help, answer one pair
                    _shot(display, window, out / f"label_{env}_pair.png")
                if "slow" in shots:
                    _x(display, "xdotool", "key", "bracketleft", "p")
                    _shot(display, window, out / f"label_{env}_paused_slow.png")
                _x(display, "xdotool", "key", "q")
                proc.wait(30)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
