"""A run directory: every path and file of one ``prefrl train`` run, in one place.

    RUN_DIR/
      config.json          the run's configuration (written once, atomically)
      store.sqlite         clips, queries and every label (learned-reward runs)
      reward_model.pt/json the live ensemble after each refit
      metrics.csv          one row per PPO update
      checkpoints/         policy_<steps>_steps.zip, five over the run
      policy.zip           the final policy
      summary.json         written last: a run with it is finished
      tb/                  TensorBoard logs
      .lock                held (``flock``) by the process that trains into the directory

Policies are read as tensors only, never unpickled (:meth:`RunDir.load_policy`).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .algos import OFF_POLICY, algo_class, build_kwargs
from .config import check_record
from .errors import PrefrlError
from .stores import is_store_url, open_store

if TYPE_CHECKING:
    from .reward_fn import LearnedReward
    from .reward_model import RewardEnsemble

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs on one directory are then not refused
    fcntl = None

__all__ = ["RunDir", "load_policy", "load_reward", "replacing", "write_atomic"]

# The files whose presence says a directory already holds a run (of ``prefrl train`` or ``prefrl lm``).
RUN_FILES = ("config.json", "store.sqlite", "summary.json", "policy.zip", "metrics.csv", "reward_model.pt")


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A path beside ``path`` to write the new file to (``NAME.partial.EXT``: the extension kept, which
    SB3 and numpy insist on, and no longer a name readers look for); once the block ends without
    error it is moved over ``path`` (one rename: readers see the old file or the new one, never half
    of one), and in any case no partial file is left."""
    partial = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all: a kill or a full disk mid-write leaves the old one (and no
    partial file beside it)."""
    try:
        with replacing(path) as tmp, tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if exc.filename is None:  # a write that failed names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


class RunDir:
    """The files of one run under ``path`` (see the module docstring for the layout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = None  # the open lock file while this process holds the directory

    @classmethod
    def create(cls, path: str | Path | None, name: str, resume: bool = False) -> RunDir:
        """Take the run directory ``path`` (made if needed), or a fresh ``runs/<name>-<time>``, for this
        process: it is locked until :meth:`release` (or the process ends), so a second trainer on the
        same directory is refused with one line naming the process that holds it. Without ``resume``,
        a directory that already holds a run, of any kind, is refused too: a run never writes over
        another's files. One clear line if it cannot be written."""
        path = Path(path) if path else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / ".write-test").touch()
            (path / ".write-test").unlink()
        except OSError as exc:
            raise PrefrlError(f"cannot write to run directory {path} ({exc.strerror}): choose another --run-dir") from None
        run = cls(path)
        run.claim()
        if not resume:
            held = [f for f in RUN_FILES if (path / f).exists()]
            if held:
                run.release()
                raise PrefrlError(f"{path} already holds {run._held()} ({', '.join(held)}): choose a new --run-dir")
        return run

    def claim(self) -> None:
        """Lock the directory for this process (``flock`` on ``.lock``, which also holds the PID); one
        clear line naming the PID if another process holds it."""
        if fcntl is None or self._lock is not None:
            return
        lock = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            pid = lock.read().strip()
            lock.close()
            who = f"process {pid}" if pid.isdigit() else "another process"
            raise PrefrlError(f"{self.path} is in use by {who}, which is training into it: wait for it to end, "
                              "or choose another --run-dir") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def release(self) -> None:
        """Unlock the directory (closing the lock file releases the ``flock``)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            with suppress(OSError):
                lock.truncate(0)
            lock.close()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _held(self) -> str:
        """What run the directory holds, for the refusal: its kind, and for an unfinished training
        run the command that continues it."""
        try:
            config = json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            config = None
        if not isinstance(config, dict):
            return "a run"
        if "method" in config and "reward" not in config:
            return f"a `prefrl lm` run ({config['method']})"
        reward = f" {config['reward']}-reward" if isinstance(config.get("reward"), str) else ""
        if self.finished:
            return f"a finished{reward} `prefrl train` run"
        return f"an unfinished{reward} `prefrl train` run, which `prefrl train --resume {self.path}` continues"

    def __str__(self) -> str:
        return str(self.path)

    # paths
    @property
    def store_path(self) -> Path:
        return self.path / "store.sqlite"

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def policy_path(self) -> Path:
        return self.path / "policy.zip"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tb"

    @property
    def finished(self) -> bool:
        return self.summary_path.exists()

    @property
    def has_reward_model(self) -> bool:
        return (self.path / "reward_model.pt").exists()

    # files
    def write_config(self, config: dict[str, Any]) -> None:
        write_atomic(self.config_path, json.dumps(config, indent=2))

    def config(self) -> dict[str, Any]:
        """The run's ``config.json``; one clear line if it is missing or not JSON."""
        if not self.config_path.is_file():
            raise PrefrlError(f"{self.path} holds no config.json: give the directory of a `prefrl train` run")
        try:
            record = json.loads(self.config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PrefrlError(f"{self.config_path} is not valid JSON ({getattr(exc, 'msg', exc)}): it was damaged "
                              "or written by hand; restore it from a backup") from None
        check_record(record, self.config_path)
        from .envs import register_recorded

        register_recorded(record.get("env_registration"))  # an id the user's module registered in training
        return record

    def spec(self):
        """The :class:`~prefrl.envs.EnvSpec` of the env the run trained on."""
        from .envs import resolve

        return resolve(self.config()["env"])

    def writable(self, sub: str) -> Path:
        """``RUN_DIR/sub``, made if needed, once a file can be written there; one clear line if not
        (a read-only disk, say), before any work whose results would go there."""
        out = self.path / sub
        try:
            out.mkdir(exist_ok=True)
            probe = out / ".write-test"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise PrefrlError(f"cannot write to {out} ({exc.strerror}): copy the run directory somewhere writable "
                              "and give that") from None
        return out

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.summary_path, json.dumps(summary, indent=2))

    def summary(self) -> dict[str, Any]:
        """The finished run's ``summary.json`` ({} while it runs)."""
        return json.loads(self.summary_path.read_text()) if self.finished else {}

    @property
    def store_location(self) -> str | Path:
        """Where the run's clips and labels are: the PostgreSQL URL its ``config.json`` names
        (``prefrl train --store``), else ``store.sqlite`` in the directory."""
        if self.config_path.exists():
            url = self.config().get("store")
            if url:
                return url
        return self.store_path

    def store(self, env: str | None = None, create: bool = False, location: str | None = None):
        """The run's preference store (at ``location`` if given, e.g. ``prefrl label --store URL``);
        without ``create``, one clear line if there is none."""
        location = location or self.store_location
        if not is_store_url(location) and not create and not Path(location).exists():
            raise PrefrlError(f"{self.path} holds no store.sqlite: give the directory of a `prefrl train` run")
        return open_store(location, env=env, create=create)

    def save_policy(self, agent, path: Path | None = None) -> Path:
        """Save ``agent`` (SB3) as ``path`` (default ``policy.zip``) whole or not at all: written
        beside it, then moved over it, so a kill mid-save leaves the previous file."""
        path = Path(path or self.policy_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as partial:
            agent.save(partial)
        return path

    def save_reward_model(self, model: RewardEnsemble) -> None:
        model.save(self.path)

    def reward_model(self, device: str = "cpu") -> RewardEnsemble:
        """The last saved ensemble, read as tensors only."""
        from .reward_model import RewardEnsemble

        if not self.has_reward_model:
            raise PrefrlError(f"{self.path} holds no reward_model.pt: give the directory of a learned-reward "
                              "`prefrl train` run")
        return RewardEnsemble.load(self.path, device)

    def reward(self, device: str = "cpu", pessimism: float | None = None,
               batch_size: int | None = 1024) -> LearnedReward:
        """The run's learned reward on (observations, actions) of the env it trained on: as PPO saw
        it (the run's pessimism), or with ``pessimism`` given (0: the ensemble mean)."""
        from .reward_fn import LearnedReward

        model = self.reward_model(device).eval()
        env = self.make_env()
        pessimism = self.config().get("pessimism", 0.0) if pessimism is None else pessimism
        try:
            return LearnedReward(model, env.observation_space, env.action_space, pessimism=pessimism,
                                 batch_size=batch_size)
        finally:
            env.close()

    def make_env(self, render_mode: str | None = None, fixed_horizon: bool | None = None):
        """A fresh env of the kind the run trained on (its fixed horizon unless told otherwise)."""
        from .envs import make_env, resolve

        config = self.config()
        fixed = config.get("fixed_horizon", True) if fixed_horizon is None else fixed_horizon
        return make_env(resolve(config["env"]).name, fixed_horizon=fixed, render_mode=render_mode)

    # policies
    def checkpoints(self) -> list[tuple[int, Path]]:
        """The policy checkpoints, (env steps, path), oldest first."""
        found = []
        for path in self.checkpoint_dir.glob("policy_*_steps.zip"):
            try:
                found.append((int(path.stem.split("_")[1]), path))
            except ValueError:
                continue
        return sorted(found)

    def latest_checkpoint(self) -> tuple[Path | None, int]:
        """The newest policy checkpoint and its env steps ((None, 0) if there is none)."""
        found = self.checkpoints()
        return (found[-1][1], found[-1][0]) if found else (None, 0)

    def load_policy(self, path: str | Path | None = None, device: str = "cpu"):
        """A saved policy (``policy.zip`` by default, or a checkpoint), read as tensors only.

        SB3's own ``PPO.load`` unpickles the zip's data part, which can run code: a run from someone
        else must never be opened that way. Here the algorithm is rebuilt from the run's
        ``config.json`` (JSON) and the preset, and only the zip's ``state_dict`` tensors are loaded
        (``set_parameters``, ``torch.load(weights_only=True)``).
        """
        from stable_baselines3.common.vec_env import DummyVecEnv

        from .envs import make_env, resolve
        from .presets import preset_for

        config = self.config()
        spec = resolve(config["env"])
        algo_name = config.get("algo", "ppo")
        _, kwargs = replace(preset_for(spec.name, spec.atari), **config.get("overrides", {})).algo(algo_name)
        kwargs.update(config.get("hyperparams", {}))
        if algo_name in OFF_POLICY:
            kwargs["buffer_size"] = 1  # acting needs no replay buffer (an Atari one takes gigabytes)
        venv = DummyVecEnv([lambda: make_env(spec.name, fixed_horizon=config.get("fixed_horizon", True))])
        with warnings.catch_warnings():  # one env here, so PPO's batch size does not divide its rollout: no matter
            warnings.filterwarnings("ignore", message="You have specified a mini-batch size")
            algo = algo_class(algo_name)("CnnPolicy" if spec.atari else "MlpPolicy", venv, device=device, verbose=0,
                                         **build_kwargs(algo_name, kwargs, venv.action_space))
        set_parameters(algo, path or self.policy_path, device)
        return algo


def set_parameters(algo, path: str | Path, device: str) -> None:
    """Load a policy zip's tensors into ``algo`` (``set_parameters``: ``weights_only``, no code runs);
    a zip that cannot be read (cut short by a kill) is one clear line."""
    try:
        algo.set_parameters(str(path), device=device)
    except Exception as exc:
        raise PrefrlError(f"{path} cannot be read as a policy of this run ({type(exc).__name__}): it may have been cut "
                          "short by a kill; delete it and use the checkpoint before it") from None


def load_policy(run_dir: str | Path, path: str | Path | None = None, device: str = "cpu"):
    """A run's saved policy (``policy.zip``, or the checkpoint ``path``), read as tensors only."""
    return RunDir(run_dir).load_policy(path, device)


def load_reward(run_dir: str | Path, device: str = "cpu") -> LearnedReward:
    """The learned reward a run saved, as a callable on (observations, actions) of its env.

    Example:
        >>> reward = prefrl.load_reward("runs/cartpole-learned-s0")
        >>> reward(obs[None], action[None])        # array([0.73], dtype=float32)
    """
    return RunDir(run_dir).reward(device)
