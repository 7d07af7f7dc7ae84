"""Bad input and faults in every command: one line naming the file or value and what to do, a non-zero
exit, and the store as it was (experiments/bad_inputs.py runs the whole list as a user would)."""

import errno
import json
import os
import shutil
from pathlib import Path
import sqlite3

import pytest
import torch

from prefrl.cli import fault_line, main
from prefrl.run_dir import write_atomic
from prefrl.store import DamagedClipError, PreferenceStore


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny finished learned cartpole run (a few seconds)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "cartpole", "--labels", "6", "--steps", "512", "--set", "eval_episodes=1", "--no-progress",
                 "--run-dir", str(run)]) == 0
    return run


@pytest.fixture
def run(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy


def _rows(store_path):
    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    dump = list(db.iterdump())
    db.close()
    return dump


def _one_line(capsys, argv, message, code=2):
    capsys.readouterr()
    assert main(argv) == code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0], err
    return err[0]


def _damage(store_path, clip_id):
    db = sqlite3.connect(store_path)
    blob = db.execute("SELECT obs FROM clips WHERE id = ?", (clip_id,)).fetchone()[0]
    db.execute("UPDATE clips SET obs = ? WHERE id = ?", (blob[:8] + bytes(len(blob) - 8), clip_id))
    db.commit()
    db.close()


@pytest.mark.parametrize("damage, message", [
    (lambda r: (r / "reward_model.pt").write_bytes((r / "reward_model.pt").read_bytes()[:300]),
     "reward_model.pt is damaged"),
    (lambda r: (r / "reward_model.json").unlink(), "holds reward_model.pt but no reward_model.json"),
    (lambda r: (r / "reward_model.json").write_text('{"layers": 7}'), "is not a prefrl reward model's description"),
    (lambda r: (r / "reward_model.json").write_text("{oops"), "is not a prefrl reward model's description"),
    (lambda r: torch.save({"w": object.__new__(torch.nn.Module)}, r / "reward_model.pt"),
     "is not a prefrl reward model: it holds Python objects besides tensors, which could run code if loaded; do not "
     "load it"),
    (lambda r: (r / "config.json").write_text("[1, 2]"), "is not a prefrl run's config"),
    (lambda r: (r / "config.json").write_text(json.dumps({"env": 7})), "is not a prefrl run's config"),
    (lambda r: (r / "config.json").unlink(), "holds no config.json"),
    (lambda r: (r / "policy.zip").write_bytes(b"PK"), "cannot be read as a policy of this run"),
], ids=["pt truncated", "json missing", "json foreign", "json not JSON", "pt a pickle", "config a list",
        "config env a number", "config missing", "policy cut short"])
def test_compare_names_a_damaged_run_file_in_one_line(run, capsys, damage, message):
    damage(run)
    before = _rows(run / "store.sqlite")
    line = _one_line(capsys, ["compare", str(run), "--episodes", "1"], message)
    assert "weights_only=False" not in line  # torch's advice to unpickle: the unsafe thing
    assert _rows(run / "store.sqlite") == before


def test_a_resumed_run_with_a_changed_config_field_is_refused(run, capsys):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "labels": "many"}))
    (run / "summary.json").unlink()
    _one_line(capsys, ["train", "--resume", str(run)], 'labels is "many", not of type int | None')


@pytest.mark.parametrize("argv, message", [
    (["--episodes", "0"], "--episodes 0 must be at least 1"),
    (["--video", "-5"], "--video -5 must be a number of steps"),
    (["--baseline", "/no/such/run"], "--baseline /no/such/run holds no metrics.csv"),
])
def test_compare_flags_are_checked_before_any_rollout(run, capsys, argv, message):
    _one_line(capsys, ["compare", str(run), *argv], message)
    assert not (run / "compare").exists()


def test_compare_that_cannot_write_its_figures_says_so_before_its_rollouts(run, capsys):
    (run / "compare").write_text("a file where the figures' folder goes")
    _one_line(capsys, ["compare", str(run), "--episodes", "1"], f"cannot write to {run / 'compare'}")


def test_resume_takes_no_other_settings(run, capsys):
    (run / "summary.json").unlink()
    before = (run / "config.json").read_text()
    _one_line(capsys, ["train", "--resume", str(run), "--labels", "5", "--seed", "3", "--set", "reward_epochs=2",
                       "--config", "run.toml", "--hyperparams", "gamma=0.9"],
              "takes its settings from the run's config.json: drop --labels, --seed, --hyperparams, --config, --set")
    assert (run / "config.json").read_text() == before


@pytest.mark.parametrize("command", ["ratings", "export", "label"])
def test_a_store_that_lost_a_table_is_refused_and_left_as_it_is(run, capsys, command):
    db = sqlite3.connect(run / "store.sqlite")
    db.execute("DROP TABLE comparisons")
    db.commit()
    db.close()
    before = _rows(run / "store.sqlite")
    _one_line(capsys, [command, str(run)], "has lost its comparisons table: the store is damaged")
    assert _rows(run / "store.sqlite") == before


def test_resume_on_a_damaged_clip_names_the_clip(run, capsys):
    (run / "summary.json").unlink()
    _damage(run / "store.sqlite", 1)
    _one_line(capsys, ["train", "--resume", str(run)], "clip 1 is damaged")


def test_the_labeling_window_passes_over_a_pair_with_a_damaged_clip_and_leaves_it_unclaimed(run):
    from prefrl.labeling_ui.session import LabelingSession

    with PreferenceStore(run / "store.sqlite", create=False) as store:
        ids = store.clip_ids()
        store.add_queries([(ids[0], ids[1]), (ids[2], ids[3])], source="human")
        broken = store.comparisons("pending")[0]
    _damage(run / "store.sqlite", broken.left_id)
    told = []
    with PreferenceStore(run / "store.sqlite", create=False) as store:
        session = LabelingSession(store, "ann", "cartpole", on_damaged=told.append)
        assert session.current is not None and session.current.id != broken.id  # the next pair is shown
        assert [q.id for q, _ in session.damaged] == [broken.id]
        assert isinstance(told[0], DamagedClipError) and told[0].clip_id == broken.left_id
        session.apply("left")
        assert session.current is None  # the damaged pair is not shown again
        session.quit()
    db = sqlite3.connect(run / "store.sqlite")
    status, claimed = db.execute("SELECT status, claimed_by FROM comparisons WHERE id = ?", (broken.id,)).fetchone()
    db.close()
    assert status == "pending" and claimed is None  # left for a labeler once the store is mended


def test_export_is_whole_or_not_at_all_and_says_a_full_disk_is_full(run, capsys, monkeypatch):
    out = run / "out"
    assert main(["export", str(run), "--out", str(out)]) == 0
    before = (out / "comparisons.jsonl").read_bytes()
    assert before

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    _one_line(capsys, ["export", str(run), "--out", str(out)], "the disk is full", code=1)
    assert (out / "comparisons.jsonl").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["clips.jsonl", "comparisons.jsonl"]  # no partial file left


def test_export_to_a_file_is_refused(run, capsys):
    (run / "a_file").write_text("x")
    _one_line(capsys, ["export", str(run), "--out", str(run / "a_file")], "is a file: give a directory")


def test_write_atomic_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    write_atomic(path, "old")

    def fail(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        write_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_faults_of_the_machine_are_said_as_what_they_are():
    assert "the disk is full" in fault_line(OSError(errno.ENOSPC, "No space left on device", "/x/metrics.csv"))
    assert "/x/metrics.csv" in fault_line(OSError(errno.ENOSPC, "No space left on device", "/x/metrics.csv"))
    assert "read-only" in fault_line(OSError(errno.EROFS, "Read-only file system"))
    assert "permission denied" in fault_line(PermissionError(errno.EACCES, "Permission denied"))
    assert "the disk is full" in fault_line(sqlite3.OperationalError("database or disk is full"))
    assert "read-only" in fault_line(sqlite3.OperationalError("attempt to write a readonly database"))
    assert fault_line(OSError(errno.ENOENT, "No such file")) is None  # not a fault of the machine: a bug's traceback
    assert fault_line(sqlite3.OperationalError("no such column: x")) is None


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "--seed -1 must be in 0.."),
    (["--pessimism", "nan"], "--pessimism nan must be a finite number"),
    (["--max-minutes", "inf"], "--max-minutes inf must be a positive number"),
    (["--labels", "100000000", "--steps", "4096"], "4096 steps yield only 81 clips of 50 steps"),
    (["--set", "n_envs=0"], "--set n_envs=0: must be a whole number ≥ 1"),
    (["--set", "reward_epochs=2.5"], "--set reward_epochs=2.5: expected a value like the preset's 60"),
    (["--set", "reward_std=NaN"], "--set reward_std=nan: must be a positive number"),
    (["--set", "explore_fraction=2"], "--set explore_fraction=2: must be in [0, 1]"),
])
def test_train_numbers_are_checked_before_any_work(tmp_path, capsys, argv, message):
    _one_line(capsys, ["train", "cartpole", "--run-dir", str(tmp_path / "r"), *argv], message)
    assert not (tmp_path / "r").exists()


def test_an_env_with_observations_prefrl_cannot_take_is_refused_by_name(capsys):
    _one_line(capsys, ["train", "Blackjack-v1"], "env 'Blackjack-v1' has Tuple observations")


@pytest.mark.parametrize("content, message", [
    (b'{"prompt": "a", "chosen": "b", "rejected": "\xff"}\n', "line 1 is not UTF-8 text"),
    (b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n{oops\n', "line 2 is not JSON"),
    (b'{"prompt": "a", "rejected": "c"}\n', "line 1 lacks 'chosen'"),
    (b'{"prompt": "a", "chosen": 5, "rejected": "c"}\n', "line 1: prompts and completions must be text"),
    (b"", "holds no pairs rows"),
])
def test_lm_data_files_are_checked_before_sft_naming_the_line(tmp_path, capsys, content, message):
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(content)
    _one_line(capsys, ["lm", "--method", "dpo", "--pair-data", str(data), "--run-dir", str(tmp_path / "lm")],
              f"{data} {message}" if "holds" in message else message)
    assert not (tmp_path / "lm").exists()  # refused before the run directory, let alone SFT


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs 0 must be at least 1"),
    (["--kl-coef", "nan"], "--kl-coef nan must be a finite number"),
    (["--ppo-iterations", "-1"], "--ppo-iterations -1 must be at least 1"),
])
def test_lm_numbers_are_checked_before_any_work(tmp_path, capsys, argv, message):
    _one_line(capsys, ["lm", "--run-dir", str(tmp_path / "lm"), *argv], message)


def test_a_policy_is_saved_whole_or_not_at_all(tmp_path):
    from prefrl.run_dir import RunDir

    class Agent:
        def __init__(self, data, fail=False):
            self.data, self.fail = data, fail

        def save(self, path):
            Path(path).write_bytes(self.data[:2])
            if self.fail:
                raise OSError(errno.ENOSPC, "No space left on device")
            Path(path).write_bytes(self.data)

    run = RunDir(tmp_path)
    run.save_policy(Agent(b"first"))
    with pytest.raises(OSError):
        run.save_policy(Agent(b"second", fail=True))
    assert run.policy_path.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["policy.zip"]
    run.save_policy(Agent(b"third"), run.checkpoint_dir / "policy_64_steps.zip")
    assert run.latest_checkpoint() == (run.checkpoint_dir / "policy_64_steps.zip", 64)


def test_a_reward_model_save_on_a_full_disk_is_said_as_such_and_keeps_the_last_model(tmp_path, monkeypatch):
    import shutil as shutil_module
    from collections import namedtuple

    from prefrl.reward_model import RewardEnsemble, RewardModelConfig

    model = RewardEnsemble(RewardModelConfig(n_features=3))
    model.save(tmp_path)
    before = (tmp_path / "reward_model.pt").read_bytes()

    def full(obj, path):  # what torch's zip writer raises when the disk fills under it
        Path(path).write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 7552 vs 7440")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil_module, "disk_usage", lambda p: namedtuple("u", "total used free")(1, 1, 0))
    with pytest.raises(OSError) as raised:
        model.save(tmp_path)
    assert raised.value.errno == errno.ENOSPC and "the disk is full" in fault_line(raised.value)
    assert (tmp_path / "reward_model.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reward_model.json", "reward_model.pt"]


def test_a_usage_error_is_one_line_and_help_shows_defaults_and_choices(capsys):
    assert main(["train", "cartpole", "--labels", "many"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid int value: 'many'" in err[0]
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: disagreement)" in out and "{learned,true}" in out
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("prefrl ")


def test_phase_progress_draws_on_a_terminal_only(monkeypatch):
    import sys

    from prefrl.progress import progress

    with progress(3, "phase") as bar:  # pytest captures stderr: not a terminal, so nothing is drawn
        bar.update()
    assert type(bar).__name__ == "_Silent"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert type(progress(3, "phase", enabled=False)).__name__ == "_Silent"
    drawn = progress(3, "phase")
    assert drawn.total == 3 and drawn.desc == "phase"
    drawn.close()


def test_config_json_holds_the_algorithm_settings_as_data(finished):
    ppo = json.loads((finished / "config.json").read_text())["preset"]["ppo"]
    assert ppo["n_steps"] == 32 and ppo["learning_rate"] == {
        "linear_schedule": {"start": 1e-3, "end": 0.0, "end_fraction": 1.0}}
    from prefrl.training import as_data
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike

    assert as_data({"optimizer_class": RMSpropTFLike, "net_arch": (64, 64)}) == {
        "optimizer_class": "stable_baselines3.common.sb2_compat.rmsprop_tf_like.RMSpropTFLike", "net_arch": [64, 64]}


def test_a_pair_the_window_cannot_draw_is_one_line_and_left_unclaimed(tmp_path):
    from prefrl.clips import Clip
    from prefrl.errors import PrefrlError
    from prefrl.labeling_ui.session import LabelingSession

    import numpy as np

    with PreferenceStore(tmp_path / "store.sqlite", env="FrozenLake-v1") as store:
        ids = store.add_clips([Clip(np.zeros(5, np.int64), np.zeros(5, np.int64), np.zeros(5, np.float32))
                               for _ in range(2)])
        store.add_queries([tuple(ids)], source="human")
        with pytest.raises(PrefrlError, match="cannot draw clips of 'FrozenLake-v1'"):
            LabelingSession(store, "ann", "FrozenLake-v1")
    db = sqlite3.connect(tmp_path / "store.sqlite")
    assert db.execute("SELECT claimed_by FROM comparisons").fetchone()[0] is None
    db.close()
