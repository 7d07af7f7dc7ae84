"""``prefrl compare``: how well a run's learned reward tracks the game score on fresh episodes.

Rolls out held-out episodes, on new seeds, of the env the run trained on (the fixed-horizon variant
unless the run was ``--no-fixed-horizon``, so a cartpole fall costs its −50 as the teacher saw it)
from several policies (random, the run's saved checkpoints, its final policy), scores every step
with the saved reward model, and compares learned with true reward per step, per clip (the run's
clip length) and per episode (cut at ``max_steps``: an Atari episode runs 27,000 steps); and, where
the game score is a function of (s, a, s') (pendulum, acrobot, mountaincar), the EPIC distance of
the learned reward from it (:mod:`prefrl.epic`).
Pair accuracy, over clip pairs whose true returns differ, is the share the learned reward orders the
same way; unlike rank correlations it is not capped by ties (most Atari clips score 0 or ±1).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .envs import make_env, resolve
from .epic import TRUE_REWARDS, epic_distance
from .errors import PrefrlError
from .presets import preset_for
from .progress import progress
from .reward_fn import LearnedReward
from .run_dir import RunDir, write_atomic
from .stats import bootstrap_ci, correlations, pair_accuracy, ranks

__all__ = ["Episode", "pair_accuracy", "ranks", "correlations", "compare"]

MAX_PAIR_CLIPS = 3000  # pair accuracy is O(clips²): a random subset beyond this


@dataclass
class Episode:
    """One held-out episode: the policy it came from, and its true and learned reward per step."""

    policy: str
    true: np.ndarray
    learned: np.ndarray


def _policies(run: RunDir) -> dict:
    """The run's saved policies, loaded as tensors only (see :meth:`prefrl.run_dir.RunDir.load_policy`)."""
    policies: dict = {"random": None}
    for steps, path in run.checkpoints():
        policies[f"checkpoint {steps}"] = run.load_policy(path)
    if run.policy_path.exists():
        policies["final"] = run.load_policy()
    return policies


def _rollout(env_name: str, fixed_horizon: bool, reward: LearnedReward, policy, episodes: int, seed: int,
             max_steps: int, keep: bool = False) -> list:
    env = make_env(env_name, fixed_horizon=fixed_horizon)
    env.action_space.seed(seed)
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        all_obs, actions, true = [], [], []
        for _ in range(max_steps):
            action = env.action_space.sample() if policy is None else policy.predict(obs, deterministic=False)[0]
            all_obs.append(obs)
            actions.append(action)
            obs, r, terminated, truncated, _ = env.step(action)
            true.append(float(r))
            if terminated or truncated:
                break
        learned = reward(np.stack(all_obs), np.stack(actions))
        # (s, a, s') transitions for the EPIC distance, where the score is a function of them
        transitions = (np.stack(all_obs), np.stack(actions), np.stack(all_obs[1:] + [obs])) if keep else None
        out.append((np.array(true), learned, transitions))
    env.close()
    return out


def compare(run_dir: str | Path, episodes: int = 5, baseline: str | Path | None = None, seed: int = 10_000,
            max_steps: int = 5000) -> dict:
    """Write ``compare.json`` and PNGs (clip scatter, episode traces, learning curves) into
    ``RUN_DIR/compare/`` and return the figures."""
    if episodes < 1:
        raise PrefrlError(f"--episodes {episodes} must be at least 1")
    run = RunDir(run_dir)
    config = run.config()
    spec = run.spec()
    if baseline is not None and not RunDir(baseline).metrics_path.is_file():
        raise PrefrlError(f"--baseline {baseline} holds no metrics.csv: give the directory of a `prefrl train "
                          "--reward true` run")
    out = run.writable("compare")  # before the rollouts, which take minutes
    reward = run.reward(pessimism=0.0)  # the ensemble mean: the reward model's own estimate
    clip_length = preset_for(spec.name, spec.atari).clip_length
    episodes_out: list[Episode] = []
    transitions = []
    keep = spec.name in TRUE_REWARDS
    policies = _policies(run)
    with progress(len(policies) * episodes, "held-out episodes (random, checkpoints, final)") as bar:
        for k, (name, policy) in enumerate(policies.items()):
            for true, learned, steps in _rollout(spec.name, config.get("fixed_horizon", True), reward, policy,
                                                 episodes, seed + 1000 * k, max_steps, keep):
                episodes_out.append(Episode(name, true, learned))
                transitions.append(steps)
            bar.update(episodes)
    step_l = np.concatenate([e.learned for e in episodes_out])
    step_t = np.concatenate([e.true for e in episodes_out])
    clip_l, clip_t, clip_p = [], [], []
    for e in episodes_out:
        for i in range(0, len(e.true) - clip_length + 1, clip_length):
            clip_l.append(e.learned[i:i + clip_length].sum())
            clip_t.append(e.true[i:i + clip_length].sum())
            clip_p.append(e.policy)
    clip_l, clip_t, clip_p = np.array(clip_l), np.array(clip_t), np.array(clip_p)
    ep_l = np.array([e.learned.sum() for e in episodes_out])
    ep_t = np.array([e.true.sum() for e in episodes_out])
    rng = np.random.default_rng(0)
    pick = rng.choice(len(clip_t), MAX_PAIR_CLIPS, replace=False) if len(clip_t) > MAX_PAIR_CLIPS else slice(None)
    accuracy, n_pairs = pair_accuracy(clip_l[pick], clip_t[pick])
    result = {"env": spec.name, "run_dir": str(run_dir), "clip_length": clip_length, "max_steps": max_steps,
              "policies": sorted({e.policy for e in episodes_out}, key=[e.policy for e in episodes_out].index),
              "n_episodes": len(episodes_out), "n_steps": len(step_t), "n_clips": len(clip_t),
              "pair_accuracy": accuracy, "n_pairs": n_pairs}
    for level, (a, b) in {"step": (step_l, step_t), "clip": (clip_l, clip_t), "episode": (ep_l, ep_t)}.items():
        result[f"pearson_{level}"], result[f"spearman_{level}"] = correlations(a, b)
    # 95% bootstrap intervals at the clip level (pair accuracy's on at most 600 clips: it is O(clips²))
    sub = rng.choice(len(clip_t), 600, replace=False) if len(clip_t) > 600 else slice(None)
    result["ci95"] = {
        "pearson_clip": bootstrap_ci(lambda a, b: correlations(a, b)[0], clip_l, clip_t),
        "spearman_clip": bootstrap_ci(lambda a, b: correlations(a, b)[1], clip_l, clip_t),
        "pair_accuracy": bootstrap_ci(lambda a, b: pair_accuracy(a, b)[0], clip_l[sub], clip_t[sub], n_resamples=200),
    }
    result["per_policy"] = {}
    for policy in result["policies"]:
        mine = clip_p == policy
        acc, pairs = pair_accuracy(clip_l[mine], clip_t[mine])
        pearson, spearman = correlations(clip_l[mine], clip_t[mine])
        result["per_policy"][policy] = {
            "clips": int(mine.sum()), "true_per_clip": float(clip_t[mine].mean()) if mine.any() else None,
            "learned_per_clip": float(clip_l[mine].mean()) if mine.any() else None,
            "pair_accuracy": acc, "n_pairs": pairs, "pearson_clip": pearson, "spearman_clip": spearman}
    result["epic_distance"] = _epic(spec.name, reward, transitions) if keep else None
    result["figures"] = _plots(out, episodes_out, clip_l, clip_t, clip_p, result, run.path,
                               Path(baseline) if baseline else None)
    write_atomic(out / "compare.json", json.dumps(result, indent=2))
    write_atomic(out / "report.md", _report(run, config, result))
    return result


def _report(run: RunDir, config: dict, result: dict) -> str:
    """One page per run: what it was, how its learned reward tracks the score, its figures."""
    run_dir = run.path
    summary = run.summary()
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    lines = [f"# {result['env']}: learned reward against the game score", "",
             f"Run `{run_dir}`: {config.get('reward', 'learned')} reward, {summary.get('labels_used', '?')} labels, "
             f"{summary.get('timesteps', '?')} steps, seed {config.get('seed', '?')}; final policy's true return "
             f"{summary.get('true_return_mean', float('nan')):.1f} ± {summary.get('true_return_std', float('nan')):.1f}.",
             "", f"Held out: {result['n_episodes']} episodes ({', '.join(result['policies'])}), {result['n_steps']} steps, "
             f"{result['n_clips']} clips of {result['clip_length']} steps.", "",
             "| level | Pearson | Spearman |", "|---|---|---|"]
    ci = result.get("ci95", {})
    interval = lambda key: "" if not ci.get(key) else f" [{ci[key][0]:.3f}, {ci[key][1]:.3f}]"  # noqa: E731
    for level in ("step", "clip", "episode"):
        more = level == "clip"
        lines.append(f"| {level} | {fmt(result[f'pearson_{level}'])}{interval('pearson_clip') if more else ''} | "
                     f"{fmt(result[f'spearman_{level}'])}{interval('spearman_clip') if more else ''} |")
    lines += ["", f"Pair accuracy over {result['n_pairs']} clip pairs whose true returns differ: "
              f"**{fmt(result['pair_accuracy'])}**{interval('pair_accuracy')}. Brackets: 95% bootstrap intervals "
              "over the clips (scipy.stats.bootstrap, percentile; pair accuracy's on at most 600 clips)."]
    if result.get("per_policy"):
        lines += ["", "By policy (clips of its held-out episodes; pair accuracy among its own clips):", "",
                  "| policy | clips | true / clip | learned / clip | pair accuracy (pairs) | Pearson | Spearman |",
                  "|---|---|---|---|---|---|---|"]
        for policy, f in result["per_policy"].items():
            lines.append(f"| {policy} | {f['clips']} | {fmt(f['true_per_clip'])} | {fmt(f['learned_per_clip'])} | "
                         f"{fmt(f['pair_accuracy'])} ({f['n_pairs']}) | {fmt(f['pearson_clip'])} | "
                         f"{fmt(f['spearman_clip'])} |")
    if summary.get("rm_val_accuracy") is not None:
        size = summary.get("rm_val_labels")
        lines += ["", f"The reward model's accuracy on its own held-out labels: {summary['rm_val_accuracy']:.3f} "
                  f"({'of ' + str(size) + ' labels' if size else 'validation-set size not recorded by this run'}"
                  f"{'; too few to trust' if size is not None and size < 30 else ''})."]
    if result.get("epic_distance") is not None:
        lines.append(f"EPIC distance from the score: **{result['epic_distance']:.3f}** (0: the same reward up to "
                     "shaping and scale).")
    if (run_dir / "ratings.json").exists():
        ratings = json.loads((run_dir / "ratings.json").read_text())
        lines += ["", f"Labels (`prefrl ratings`): {ratings['labels']} over {ratings['clips_rated']} clips, "
                  f"{ratings['intransitive_triples']} intransitive triples; agreement with the oracle: "
                  + (", ".join(f"{k} {v['agreement']:.2f} ({v['pairs']} pairs)"
                               for k, v in ratings["agreement"]["with_oracle"].items()) or "n/a") + "."]
    lines += [""] + [f"![{png[:-4]}]({png})" for png in result["figures"]]
    return "\n".join(lines) + "\n"


def _epic(env_name: str, reward: LearnedReward, transitions: list, n: int = 2000) -> float:
    """EPIC distance of the learned reward from the game score over (up to n of) the held-out
    transitions, γ = 0.99."""
    obs, actions, next_obs = (np.concatenate(parts) for parts in zip(*transitions))
    pick = np.random.default_rng(0).choice(len(obs), min(n, len(obs)), replace=False)
    learned = lambda s, a, s2: reward(s, a)  # noqa: E731
    return epic_distance(learned, TRUE_REWARDS[env_name], obs[pick], actions[pick], next_obs[pick])


def _plots(out: Path, episodes: list[Episode], clip_l, clip_t, clip_p, result: dict, run_dir: Path,
           baseline: Path | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    policies = list(dict.fromkeys(e.policy for e in episodes))
    colours = {p: plt.get_cmap("viridis")(k / max(1, len(policies) - 1)) for k, p in enumerate(policies)}
    # Jitter a tenth of the smallest gap between distinct true returns (the true score is often a few
    # values), so clips of one value spread without reaching the next at any scale of the score.
    values = np.unique(clip_t)
    jitter = 0.1 * (np.diff(values).min() if len(values) > 1 else 1.0)
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for policy in policies:
        mine = clip_p == policy
        ax.scatter(clip_t[mine] + rng.uniform(-jitter, jitter, mine.sum()), clip_l[mine], s=7, alpha=0.5,
                   color=colours[policy], label=policy)
    ax.set_xlabel(f"true clip return (jittered ±{jitter:.3g})")
    ax.set_ylabel("learned clip return")
    r = result.get("pearson_clip")
    acc = result.get("pair_accuracy")
    ax.set_title(f"held-out clips: Pearson r {'n/a' if r is None else f'{r:.2f}'}, pair accuracy "
                 f"{'n/a' if acc is None else f'{acc:.2f}'} ({result.get('n_pairs', 0):,} pairs)", fontsize=9)
    ax.legend(fontsize=7, markerscale=2, title="policy", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "clip_scatter.png", dpi=100)
    plt.close(fig)
    written.append("clip_scatter.png")

    # One panel per policy: its first held-out episode, true and learned return so far, each
    # standardized (the two are on different scales).
    cols = min(3, len(policies))
    rows = -(-len(policies) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False, sharex=True)
    for ax, policy in zip(axes.flat, policies):
        e = next(e for e in episodes if e.policy == policy)
        z = lambda x: (np.cumsum(x) - np.cumsum(x).mean()) / (np.cumsum(x).std() or 1.0)  # noqa: E731
        ax.plot(z(e.true), color="tab:green", label="true")
        ax.plot(z(e.learned), color="tab:blue", linestyle="--", label="learned")
        ax.set_title(policy, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(policies):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("step", fontsize=9)
    fig.supylabel("return so far (standardized)", fontsize=9)
    fig.suptitle("one held-out episode per policy", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "episode_traces.png", dpi=100)
    plt.close(fig)
    written.append("episode_traces.png")

    learning_curves(run_dir, baseline, out / "learning_curves.png")
    written.append("learning_curves.png")
    return written


def _resumed(rows: list[dict]) -> list[dict]:
    """The rows of a run's ``metrics.csv`` as its final history. A resumed run now drops the rows the
    killed run logged past its last checkpoint (``MetricsLog(resumed_from=)``); a file written before
    that holds both, and here the earlier ones are dropped wherever steps go back."""
    kept: list[dict] = []
    for row in rows:
        step = int(row["timesteps"])
        while kept and int(kept[-1]["timesteps"]) >= step:
            kept.pop()
        kept.append(row)
    return kept


def learning_curves(run_dir: str | Path, baseline: str | Path | None, path: str | Path) -> Path:
    """One figure: the true score against env steps of a run and (if given) of its true-reward
    baseline, from their ``metrics.csv``; the labels the run had at each step on a second axis, so
    each batch's arrival shows as a step. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels_ax = None
    for name, directory in (("learned reward", run_dir), ("true reward (baseline)", baseline)):
        if directory is None or not RunDir(directory).metrics_path.exists():
            continue
        with RunDir(directory).metrics_path.open() as f:
            rows = _resumed(list(csv.DictReader(f)))
        scored = [r for r in rows if r["true_episode_return"]]
        ax.plot([int(r["timesteps"]) for r in scored], [float(r["true_episode_return"]) for r in scored], label=name)
        counted = [r for r in rows if r.get("labels")]
        if counted and any(int(r["labels"]) for r in counted):
            labels_ax = labels_ax or ax.twinx()
            labels_ax.step([0] + [int(r["timesteps"]) for r in counted], [int(counted[0]["labels"])] +
                           [int(r["labels"]) for r in counted], where="post", color="0.6", linewidth=1,
                           label="labels (right axis)")
            labels_ax.set_ylabel("labels")
    ax.set_xlabel("env steps")
    ax.set_ylabel("true episode return (the game's score)")
    handles = ax.get_legend_handles_labels()
    if labels_ax is not None:
        more = labels_ax.get_legend_handles_labels()
        handles = (handles[0] + more[0], handles[1] + more[1])
    ax.legend(*handles, fontsize=8, loc="upper left")
    ax.set_title("learning curves")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def episode_video(run_dir: str | Path, path: str | Path | None = None, policy: str = "final", steps: int = 1000,
                  seed: int = 20_000) -> Path:
    """Write a video (opencv; H.264 mp4 or VP9 WebM where it can, see :data:`VIDEO_CODECS`; the
    path returned has the container's suffix) of one held-out episode of ``policy`` (``final`` or ``random``) on the
    env the run trained on, with the learned reward and the true score drawn over each frame: the
    step's values and the running sums. One video frame per env step, at most ``steps``.
    Atari frames are the raw game's (score visible, for people to check against)."""
    import cv2

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # frames are drawn off-screen: SDL needs no display
    run = RunDir(run_dir)
    config = run.config()
    spec = resolve(config["env"])
    reward = run.reward(pessimism=0.0)
    agent = _policies(run).get(policy) if policy != "random" else None
    if policy != "random" and agent is None:
        raise PrefrlError(f"{run_dir} has no {policy} policy: give policy='final' or 'random'")
    env = make_env(spec.name, fixed_horizon=config.get("fixed_horizon", True), render_mode="rgb_array")
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    fps = 15.0 if spec.atari else float(env.metadata.get("render_fps", 30))
    path = Path(path or run.path / "compare" / f"episode_{policy}.mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    fourcc = None
    learned_sum = true_sum = 0.0
    try:
        for _ in range(steps):
            action = env.action_space.sample() if agent is None else agent.predict(obs, deterministic=False)[0]
            learned = float(reward(obs[None], np.asarray(action)[None])[0])
            frame = np.ascontiguousarray(env.render()[..., ::-1])  # RGB -> BGR for opencv
            obs, true, terminated, truncated, _ = env.step(action)
            learned_sum += learned
            true_sum += float(true)
            scale = max(1, 420 // frame.shape[0])
            frame = cv2.resize(frame, (frame.shape[1] * scale, frame.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
            cv2.rectangle(frame, (0, 0), (frame.shape[1], 52), (30, 30, 30), -1)
            for k, text in enumerate((f"learned {learned:+.3f}  sum {learned_sum:+.2f}",
                                      f"true    {float(true):+.3f}  sum {true_sum:+.2f}")):
                cv2.putText(frame, text, (8, 20 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                            (80, 200, 255) if k == 0 else (120, 255, 120), 1, cv2.LINE_AA)
            if writer is None:
                writer, path, fourcc = _video_writer(cv2, path, fps, (frame.shape[1], frame.shape[0]))
            writer.write(frame)
            if terminated or truncated:
                break
    finally:
        if writer is not None:
            writer.release()
        env.close()
    if fourcc == "mp4v":
        warnings.warn(f"{path}: this opencv writes neither H.264 nor VP9, so the video is MPEG-4 part 2 (mp4v), "
                      "which browsers do not play; VLC and ffmpeg do", stacklevel=2)
    return path


# What browsers play, best first: H.264 in mp4 (opencv builds with it: conda's, distributions'), VP9
# in WebM (PyPI's opencv-python, which leaves H.264 out); else MPEG-4 part 2, for VLC and ffmpeg.
VIDEO_CODECS = (("avc1", ".mp4"), ("VP90", ".webm"), ("mp4v", ".mp4"))


@contextmanager
def _c_stderr_silenced():
    """File descriptor 2 pointed at /dev/null for a moment (C libraries' messages bypass sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def _video_writer(cv2, path: Path, fps: float, size: tuple[int, int]):
    """An opened ``cv2.VideoWriter`` of the first of :data:`VIDEO_CODECS` this opencv can write, the
    path it writes (its suffix set to the container's) and the codec."""
    for fourcc, suffix in VIDEO_CODECS:
        target = path.with_suffix(suffix)
        with _c_stderr_silenced():  # a codec this build lacks makes FFmpeg and opencv write to fd 2 directly
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer, target, fourcc
        writer.release()
        target.unlink(missing_ok=True)
    raise PrefrlError(f"this opencv can write no video codec ({', '.join(c for c, _ in VIDEO_CODECS)}): install "
                      "opencv-python with FFMPEG")
