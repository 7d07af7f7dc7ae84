"""The ``prefrl`` command line."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sqlite3
import sys

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse with each option's default in its help, and a usage error in one line (what was wrong
    and where to look), as every other error of the command line is."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _parser(defaults: bool = True) -> argparse.ArgumentParser:
    """The command line; ``defaults=False``: ``train``'s options have no defaults, so that parsing says
    which were given (what a ``--config`` file may not change, what ``--resume`` refuses)."""
    from . import __version__

    parser = _Parser(prog="prefrl", description="Reinforcement learning from human preferences.")
    parser.add_argument("--version", action="version", version=f"prefrl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train PPO on a learned (or the true) reward",
                       description="Train PPO on a reward learned from synthetic preferences, or on the true "
                                   "reward as a baseline. Prints the true return reached, the labels used and "
                                   "the run directory.")

    def option(*names, **kwargs):  # train's options, without their defaults where asked
        return t.add_argument(*names, **(kwargs if defaults else {**kwargs, "default": argparse.SUPPRESS}))

    option("env", nargs="?", help="a suite name (see `prefrl envs`) or a gymnasium id")
    option("--resume", metavar="RUN_DIR", default=None,
                   help="continue a killed run from its last checkpoint with all its labels (other options are "
                        "read from the run's config.json)")
    option("--labels", type=int, default=None, help="label budget (default: the env's preset)")
    option("--initial-labels", type=int, default=None,
                   help="labels asked on random-policy clips before RL (default: the preset's share; the paper: 500)")
    option("--steps", type=int, default=None, help="PPO env steps (default: the env's preset)")
    option("--seed", type=int, default=0)
    option("--max-minutes", type=float, default=None, metavar="MINUTES",
                   help="stop PPO once the run has taken this long, pre-training counted (default: run all --steps)")
    option("--run-dir", default=None, help="run directory (default: runs/<env>-<reward>-s<seed>-<time>)")
    option("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    option("--query", default="disagreement", choices=("random", "disagreement", "entropy", "optimistic"),
           help="query selection: uniform pairs, ensemble disagreement, the entropy of the members' mean "
                "preference, or the higher upper confidence bound")
    option("--teacher", default="oracle",
                   help="synthetic teacher: oracle, noisy, myopic, mistake, skip, equal (B-Pref's), with parameters "
                        "as NAME:beta=..,gamma=..,mistake=..,skip=..,equal=..")
    option("--rank-size", type=int, default=2,
                   help="clips per query: 2 asks pairs; K > 2 asks for a ranking of K clips (the synthetic teacher's, "
                        "or people's in `prefrl label`, up to 4), trained with the Plackett-Luce loss (a ranking "
                        "counts as one label)")
    option("--pessimism", type=float, default=0.0,
                   help="PPO optimizes the ensemble mean less this many member stds (default 0: the mean)")
    option("--feedback", default="synthetic", choices=("synthetic", "human"),
                   help="synthetic (the oracle answers) or human (answer in `prefrl label RUN_DIR`)")
    option("--algo", default="ppo", choices=("ppo", "a2c", "sac", "td3", "dqn"),
                   help="ppo (rl-zoo's tuned PPO), a2c (the paper's Atari learner), or sac, td3 (Box actions) and "
                        "dqn (Discrete actions), off-policy, their replay buffer relabeled after each refit (PEBBLE)")
    option("--hyperparams", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="the SB3 learner's keyword arguments in place of the preset's, as rl-zoo's flag: Python "
                        "literals, dict(...), lin_<x> schedules (e.g. --hyperparams learning_rate=3e-4 "
                        "policy_kwargs=\"dict(net_arch=[64, 64])\")")
    option("--store", default=None, metavar="URL",
           help="postgresql://USER@HOST:PORT/DATABASE: keep the run's clips and labels on that server (an empty "
                "database), where labelers on other machines reach them (default: RUN_DIR/store.sqlite)")
    option("--config", default=None, metavar="FILE",
                   help="a YAML or TOML file of settings for the run: any of these options by their long name "
                        "(labels, seed, algo, ...), a `set` table of preset fields and a `hyperparams` table; "
                        "options given on the command line win")
    option("--reward-dropout", type=float, default=None,
                   help="dropout in the Atari reward CNN (default 0: learns faster at small budgets; the paper: 0.5)")
    option("--reward", default="learned", choices=("learned", "true"),
                   help="learned (from preferences) or true (baseline)")
    option("--no-fixed-horizon", dest="fixed_horizon", action="store_false",
                   help="let episodes end on termination (leaks the reward; for comparison only)")
    option("--no-progress", dest="progress_bar", action="store_false", help="no progress bar")
    option("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="replace a field of the env's preset for this run (repeatable; values are JSON, e.g. "
                        "--set reward_epochs=60 --set clip_length=25); `prefrl envs` lists the presets")

    sub.add_parser("envs", help="list the environment suite and its presets")

    lm = sub.add_parser("lm", help="the language-model path: SFT, then PPO on a reward model, or DPO/IPO/KTO",
                        description="Train a tiny causal LM from preferences on a synthetic task whose preference "
                                    "is a known rule (or on your own JSONL), offline, in minutes on a CPU. Prints the "
                                    "reward model's accuracy, the rule's score before and after, and the KL to the "
                                    "SFT model.")
    lm.add_argument("--method", default="ppo", choices=("ppo", "dpo", "ipo", "kto"),
                    help="ppo (reward model + PPO with a KL penalty), dpo, ipo or kto")
    lm.add_argument("--seed", type=int, default=0)
    lm.add_argument("--run-dir", default=None, help="run directory (default: runs/lm-<method>-s<seed>-<time>)")
    lm.add_argument("--no-progress", dest="progress_bar", action="store_false", help="no progress bar")
    lm.add_argument("--labels", type=int, default=2000, help="preference labels (pairs, or rankings with --rank-size)")
    lm.add_argument("--rank-size", type=int, default=2, help="K > 2: the rule ranks K samples (Plackett-Luce; ppo only)")
    lm.add_argument("--beta", type=float, default=0.1, help="DPO's and KTO's beta, IPO's tau")
    lm.add_argument("--kl-coef", type=float, default=0.2, help="PPO's per-token KL penalty coefficient")
    lm.add_argument("--kl-estimator", default="k1", choices=("k1", "k3"),
                    help="k1 (log-ratio) or k3 (non-negative) per-token KL")
    lm.add_argument("--ptx-coef", type=float, default=0.0, help="PPO-ptx: weight of the SFT loss mixed into PPO")
    lm.add_argument("--ppo-iterations", type=int, default=150)
    lm.add_argument("--epochs", type=int, default=None,
                    help="passes over the preferences (default: 5 for the reward model, 3 for DPO/IPO/KTO)")
    lm.add_argument("--sft-data", default=None, help="your prompt/completion JSONL instead of the synthetic task's")
    lm.add_argument("--pair-data", default=None, help="your prompt/chosen/rejected JSONL")
    lm.add_argument("--kto-data", default=None, help="your prompt/completion/label JSONL (for --method kto)")

    co = sub.add_parser("compare", help="compare a run's learned reward with the game score on fresh episodes")
    co.add_argument("run_dir")
    co.add_argument("--episodes", type=int, default=5, help="held-out episodes per policy")
    co.add_argument("--baseline", default=None, help="a --reward true run, for the learning-curve plot")
    co.add_argument("--video", type=int, default=0, metavar="STEPS",
                    help="also write compare/episode_final.webm (or .mp4 where opencv has H.264): STEPS steps of "
                         "the final policy, learned and true reward drawn over the frames")

    ex = sub.add_parser("export", help="write a run's comparisons and clip metadata as JSONL (and the clips)")
    ex.add_argument("run_dir")
    ex.add_argument("--store", default=None, metavar="URL", help="the run's PostgreSQL store, if not the one its "
                                                                  "config.json names")
    ex.add_argument("--out", default=None, help="directory for comparisons.jsonl and clips.jsonl (default: RUN_DIR)")
    ex.add_argument("--clips", action="store_true",
                    help="also write each clip's arrays (obs, actions, true rewards, frames where stored) as "
                         "clips/clip_<id>.npz, named in clips.jsonl")

    im = sub.add_parser("import", help="bring answered comparisons from a JSONL file into a run's store",
                        description="Bring labels given elsewhere into a run's store: one JSON object a line with "
                                    "left_id, right_id (the store's clip ids, as `prefrl export` writes them) and "
                                    "preference (1, 0 or 0.5), optionally labeler and labeled_at. Every line is "
                                    "checked before any is written; a line the store already holds is passed over.")
    im.add_argument("run_dir")
    im.add_argument("--store", default=None, metavar="URL", help="the run's PostgreSQL store, if not the one its "
                                                                  "config.json names")
    im.add_argument("path", metavar="FILE",
                    help="the JSONL file (an export's comparisons.jsonl works: its unanswered rows are left out)")
    im.add_argument("--labeler", default=None, help="store every label under this name (default: each line's own)")

    ra = sub.add_parser("ratings", help="Elo and Bradley–Terry scores of a run's clips, intransitive triples, "
                                         "labeler agreement")
    ra.add_argument("run_dir")
    ra.add_argument("--store", default=None, metavar="URL", help="the run's PostgreSQL store, if not the one its "
                                                                  "config.json names")

    lab = sub.add_parser("label", help="label clip pairs (or rank clips) by hand in a pygame window",
                         description="Open the labeling window on a run's store: two clips (or the K of a "
                                     "ranking) loop side by side; each answer is committed to the store at once.")
    lab.add_argument("run_dir", nargs="?", default=None,
                     help="a run directory (holding store.sqlite, or naming its PostgreSQL store)")
    lab.add_argument("--store", default=None, metavar="URL",
                     help="label the PostgreSQL store at postgresql://USER@HOST:PORT/DATABASE (from any machine that "
                          "reaches the server; no run directory needed)")
    lab.add_argument("--labeler", default=None, help="your name, stored with each label (default: $USER)")
    lab.add_argument("--new-pairs", action="store_true",
                     help="when no query is waiting, pick new pairs of stored clips (automatic on a finished run)")
    lab.add_argument("--rank-size", type=int, default=2,
                     help="clips in each new query picked from stored clips: 2 (a pair), 3 or 4 (a ranking, "
                          "ordered with the number keys); queries a trainer asked are shown as asked")
    return parser


def _envs() -> None:
    from .envs import SUITE
    from .presets import preset_for

    print(f"{'name':<12} {'gymnasium id':<16} {'horizon':>7} {'steps':>8} {'labels':>6} {'clip':>4}")
    for spec in SUITE.values():
        p = preset_for(spec.name)
        print(f"{spec.name:<12} {spec.gym_id:<16} {spec.horizon:>7} {p.timesteps:>8} {p.labels:>6} {p.clip_length:>4}")
    print("Any other gymnasium id works too, with generic PPO settings.")
    from .envs import ATARI_SUITE

    p = preset_for("pong", atari=True)
    print(f"Atari, score masked ({p.timesteps} steps, {p.labels} labels, {p.clip_length}-step clips): "
          f"{', '.join(ATARI_SUITE)} and any ALE/<Game>-v5 id")
    from .presets import ATARI_GPU

    print("Atari on a CUDA device also sets " + ", ".join(f"{k}={v}" for k, v in ATARI_GPU.items()).lower())


def _label(args) -> int:
    import getpass

    from .errors import PrefrlError
    from .run_dir import RunDir

    if not 2 <= args.rank_size <= 4:
        raise PrefrlError(f"--rank-size {args.rank_size} must be 2 (pairs), 3 or 4: that many clips fit side by side")
    if args.run_dir is None and args.store is None:
        raise PrefrlError("label needs a run directory, or --store URL of a PostgreSQL store")
    run = RunDir(args.run_dir) if args.run_dir is not None else None
    from .labeling_ui.app import LabelingApp, check_display
    from .labeling_ui.frames import frame_rate
    from .labeling_ui.session import LabelingSession

    check_display()  # before a clip is drawn or a pair claimed
    if run is not None and run.config_path.exists():
        run.config()  # registers an env id that a module of the user's registered when the run trained
    labeler = args.labeler or getpass.getuser() or "labeler"
    if run is not None:
        store = run.store(location=args.store)
    else:
        from .stores import open_store

        store = open_store(args.store, create=False)
    # Ctrl-C, a closed terminal or `kill` end the session as Q does: the window finishes its frame,
    # the pair on screen is released and the answers (each stored as given) are counted. The handlers
    # go in before the first pair is claimed, and before anything starts SDL (a classic-control
    # renderer does), which would otherwise put in its own and turn a SIGTERM into a closed window.
    stopped: list[int] = []
    app = None

    def stop(signum, frame):
        stopped.append(signum)
        if app is not None:
            app.stop(signum)

    stops = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, stop) for s in stops}
    try:
        session = LabelingSession(store, labeler, store.env, new_pairs=args.new_pairs or (run is not None and run.finished),
                                  rank_size=args.rank_size,
                                  on_damaged=lambda exc: print(f"prefrl label: passed over a query: {exc}",
                                                               file=sys.stderr, flush=True))
        # the help screen first for a labeler new to this store
        first_time = not any(c.labeler == labeler for c in store.comparisons()) and not any(
            r.labeler == labeler for r in store.rankings())
        app = LabelingApp(session, clip_fps=frame_rate(store.env), help=first_time)
        if stopped:  # a signal came before the window existed: it opens to release the pair and ends
            app.stop(stopped[0])
        app.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        store.close()
    print(session.summary())
    if app.stopped_by is not None:
        print(f"prefrl label: stopped by {signal.Signals(app.stopped_by).name}; every answer given is kept",
              file=sys.stderr)
        return 128 + app.stopped_by
    return 0


# What to do about each fault of the machine (not of the input), by errno.
_FAULTS = {
    errno.ENOSPC: "the disk is full: free space and run the command again (every label given is in the store)",
    errno.EDQUOT: "the disk quota is used up: free space and run the command again (every label given is in the store)",
    errno.EROFS: "the file system is read-only: copy the run directory somewhere writable and give that",
    errno.EACCES: "permission denied: give a directory you can write to, or ask its owner",
    errno.EPERM: "permission denied: give a directory you can write to, or ask its owner",
    errno.EIO: "the disk failed to read or write: check it (dmesg) before going on",
}


def fault_line(exc: BaseException) -> str | None:
    """One line for a fault of the machine (a full or read-only disk, a permission), said as what it is,
    or None for anything else (a bug, which keeps its traceback)."""
    if isinstance(exc, OSError) and exc.errno in _FAULTS:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or os.strerror(exc.errno)}; {_FAULTS[exc.errno]}"
    text = str(exc).lower()
    if isinstance(exc, sqlite3.Error):
        if "disk is full" in text:
            return f"the store could not be written ({exc}); {_FAULTS[errno.ENOSPC]}"
        if "readonly" in text or "read-only" in text:
            return f"the store could not be written ({exc}); {_FAULTS[errno.EROFS]}"
        if "disk i/o error" in text:
            return f"the store could not be read or written ({exc}); {_FAULTS[errno.EIO]}"
    return None


def _given(argv: list[str]) -> set[str]:
    """The ``train`` options given on the command line ``argv``, by their names in the namespace."""
    return set(vars(_parser(defaults=False).parse_args(argv))) - {"command"}


# How the command line spells an option, where it is not "--" + its name with dashes.
_FLAGS = {"overrides": "--set", "fixed_horizon": "--no-fixed-horizon", "progress_bar": "--no-progress"}


def _resume_alone(args, argv: list[str]) -> None:
    """``--resume`` reads every setting from the run's config.json: refuse others given with it
    (they were silently ignored), naming them. ``--no-progress`` only changes what is printed."""
    from .errors import PrefrlError

    given = _given(argv) - {"resume", "progress_bar"}
    given = [f"the env {args.env!r}" if k == "env" else _FLAGS.get(k, "--" + k.replace("_", "-"))
             for k in vars(args) if k in given]  # in the order --help lists them
    if given:
        raise PrefrlError(f"--resume {args.resume} takes its settings from the run's config.json: drop "
                          f"{', '.join(given)} (a resumed run goes on as it began)")


def _train_settings(args, argv: list[str]) -> dict:
    """``TrainConfig``'s keyword arguments: the command line's, over a ``--config`` file's."""
    from .config import read_config_file

    settings = {k: v for k, v in vars(args).items() if k not in ("command", "resume", "config")}
    if args.config is None:
        return settings
    from_file = read_config_file(args.config)
    given = _given(argv)
    settings.update({k: v for k, v in from_file.items() if k not in given})
    settings["overrides"] = {**from_file.get("overrides", {}), **args.overrides}
    settings["hyperparams"] = {**from_file.get("hyperparams", {}), **args.hyperparams}
    return settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # a usage error (one line, 2), or --help / --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    from .errors import PrefrlError

    try:
        if args.command == "envs":
            _envs()
            return 0
        if args.command == "label":
            return _label(args)
        if args.command == "compare":
            from .compare import compare

            if args.video < 0:
                raise PrefrlError(f"--video {args.video} must be a number of steps ≥ 1 (or 0, the default: no video)")
            result = compare(args.run_dir, episodes=args.episodes, baseline=args.baseline)
            if args.video:
                from .compare import episode_video

                result["video"] = str(episode_video(args.run_dir, steps=args.video))
            print(json.dumps(result, indent=2))
            return 0
        if args.command in ("export", "ratings", "import"):
            from .reports import export, import_labels, ratings

            command = {"export": export, "ratings": ratings, "import": import_labels}[args.command]
            print(json.dumps(command(**{k: v for k, v in vars(args).items() if k != "command"}), indent=2))
            return 0
        if args.command == "lm":
            from .lm import LMRun, run_lm

            result = run_lm(LMRun(**{k: v for k, v in vars(args).items() if k != "command"}))
            print(json.dumps(result, indent=2))
            if result["true_score_final"] is not None:
                print(f"{result['method']}: the rule's true score {result['true_score_sft']:.3f} (SFT) -> "
                      f"{result['true_score_final']:.3f}, KL to SFT {result['kl_to_sft']:.2f} nats, "
                      f"run directory {result['run_dir']}")
            return 0
        from .algos import parse_hyperparams
        from .config import TrainConfig, parse_overrides
        from .training import resume, train

        args.overrides = parse_overrides(args.overrides)
        args.hyperparams = parse_hyperparams(args.hyperparams)
        if args.resume:
            _resume_alone(args, argv)
            summary = resume(args.resume)
        else:
            settings = _train_settings(args, argv)
            if settings["env"] is None:
                raise PrefrlError("train needs an env (see `prefrl envs`), a --config file naming one, or --resume "
                                  "RUN_DIR to continue a run")
            summary = train(TrainConfig(**settings))
    except PrefrlError as exc:
        print(f"prefrl: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        line = fault_line(exc)
        if line is None:
            raise
        print(f"prefrl: error: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("prefrl: interrupted; every label given so far is in the store", file=sys.stderr)
        return 130
    print(json.dumps(summary, indent=2))
    print(f"true return {summary['true_return_mean']:.1f} ± {summary['true_return_std']:.1f} over "
          f"{summary['eval_episodes']} episodes, {summary['labels_used']} labels, run directory {summary['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
