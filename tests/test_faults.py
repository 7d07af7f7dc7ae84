"""No label lost: SIGKILLed writers and training runs, --resume, and bad input that must give one line."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from prefrl.cli import main
from prefrl.clips import Clip
from prefrl.store import PreferenceStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from drills import burst_drill, check_store, kill_writer_drill, make_store  # noqa: E402


@pytest.mark.slow
def test_a_killed_writer_never_loses_an_acknowledged_label(tmp_path):
    path = tmp_path / "store.sqlite"
    make_store(path, 20_000).close()
    result = kill_writer_drill(path, kills=8, seed=0, max_wait=0.5)
    assert result["problems"] == [] and result["acknowledged"] > 0


@pytest.mark.slow
def test_a_killed_training_run_keeps_its_labels_and_resumes_without_asking_a_pair_twice(tmp_path, capsys):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "prefrl.cli", "train", "cartpole", "--labels", "40",
                             "--steps", "30000", "--run-dir", str(run), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((run / "checkpoints").glob("policy_*_steps.zip")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()
    assert check_store(run / "store.sqlite", set()) == []
    with PreferenceStore(run / "store.sqlite", create=False) as store:
        before = {c.id: c.preference for c in store.comparisons("labeled")}
    assert before

    assert main(["train", "--resume", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from_step"] > 0 and summary["timesteps"] >= 30_000
    with PreferenceStore(run / "store.sqlite", create=False) as store:
        after = store.comparisons("labeled")
    assert {c.id: c.preference for c in after if c.id in before} == before  # every label kept, unchanged
    pairs = [frozenset((c.left_id, c.right_id)) for c in after]
    assert len(pairs) == len(set(pairs)) == summary["labels_used"] == 40
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2  # a finished run is not resumed again
    assert "already finished" in capsys.readouterr().err


def _one_line_error(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_corrupt_store_is_refused_and_left_as_it_was(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    garbage = np.random.default_rng(0).bytes(5000)
    (run / "store.sqlite").write_bytes(garbage)
    _one_line_error(capsys, ["train", "cartpole", "--run-dir", str(run)], "already holds a run (store.sqlite)")
    _one_line_error(capsys, ["label", str(run)], "is not a readable prefrl store")
    assert (run / "store.sqlite").read_bytes() == garbage


def _files(run: Path) -> dict[str, bytes]:
    return {str(f.relative_to(run)): f.read_bytes() for f in sorted(run.rglob("*")) if f.is_file() and f.name != ".lock"}


def test_a_second_trainer_on_a_run_directory_in_use_is_refused_naming_the_holder(tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from prefrl.run_dir import RunDir; "
                               f"r = RunDir.create({str(run)!r}, 'x'); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for argv in (["train", "cartpole", "--run-dir", str(run)],
                     ["train", "cartpole", "--reward", "true", "--run-dir", str(run)],
                     ["train", "--resume", str(run)], ["lm", "--run-dir", str(run)]):
            if argv[1] == "--resume":
                (run / "config.json").write_text(json.dumps({"env": "cartpole", "reward": "learned"}))
            before = _files(run)
            _one_line_error(capsys, argv, f"is in use by process {holder.pid}, which is training into it")
            assert _files(run) == before
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its holder: a killed run can be resumed at once
    from prefrl.run_dir import RunDir

    with RunDir.create(run, "x", resume=True):
        pass


@pytest.mark.parametrize("kind", ["learned", "true", "lm"])
def test_a_run_directory_holding_a_run_is_refused_for_every_kind_of_run(tmp_path, capsys, kind):
    run = tmp_path / "run"
    run.mkdir()
    config = {"method": "dpo", "seed": 0} if kind == "lm" else {"env": "cartpole", "reward": kind}
    (run / "config.json").write_text(json.dumps(config))
    (run / "summary.json").write_text("{}")
    (run / "policy.zip").write_bytes(b"not touched")
    before = _files(run)
    for argv in (["train", "cartpole", "--run-dir", str(run)],
                 ["train", "cartpole", "--reward", "true", "--run-dir", str(run)],
                 ["lm", "--method", "dpo", "--run-dir", str(run)]):
        _one_line_error(capsys, argv, f"{run} already holds a")
        assert _files(run) == before
    capsys.readouterr()
    main(["train", "cartpole", "--reward", "true", "--run-dir", str(run)])
    err = capsys.readouterr().err
    assert ("`prefrl lm` run (dpo)" if kind == "lm" else f"finished {kind}-reward `prefrl train` run") in err
    assert "--resume" not in err  # a finished run has nothing to resume


def test_an_unfinished_run_is_refused_with_the_resume_command(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"env": "cartpole", "reward": "learned"}))
    _one_line_error(capsys, ["train", "cartpole", "--reward", "true", "--run-dir", str(run)],
                    f"an unfinished learned-reward `prefrl train` run, which `prefrl train --resume {run}` continues "
                    "(config.json): choose a new --run-dir")


def test_resume_refuses_clips_of_another_shape_and_keeps_them(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"env": "cartpole", "labels": 20, "steps": 2048}))
    rng = np.random.default_rng(0)
    with PreferenceStore(run / "store.sqlite", env="cartpole") as store:  # 3 numbers a step; cartpole has 4
        ids = store.add_clips([Clip(rng.normal(size=(50, 3)).astype(np.float32), rng.integers(0, 2, 50),
                                    np.ones(50, np.float32)) for _ in range(4)])
        queries = store.add_queries([(ids[0], ids[1]), (ids[2], ids[3])], source="oracle")
        store.record_labels([(q, 1.0) for q in queries], labeler="oracle")
    _one_line_error(capsys, ["train", "--resume", str(run)], "has observations (3,) and actions () a step, but the env has (4,)")
    with PreferenceStore(run / "store.sqlite", create=False) as store:
        assert store.num_labels() == 2


def test_a_reward_model_that_outputs_nan_stops_training_with_one_line_and_keeps_the_labels(tmp_path, capsys,
                                                                                          monkeypatch):
    import torch

    from prefrl.reward_model import RewardEnsemble

    real_raw = RewardEnsemble.raw
    monkeypatch.setattr(RewardEnsemble, "raw", lambda self, x: real_raw(self, x) * torch.tensor(float("nan")))
    run = tmp_path / "run"
    _one_line_error(capsys, ["train", "cartpole", "--labels", "12", "--steps", "2048", "--run-dir", str(run),
                             "--no-progress"], "reward-model training diverged on")
    with PreferenceStore(run / "store.sqlite", create=False) as store:
        assert store.num_labels() > 0 and check_store(run / "store.sqlite", set()) == []
    assert not (run / "reward_model.pt").exists()


def test_a_teacher_that_skips_every_initial_query_gives_one_line(tmp_path, capsys, monkeypatch):
    from prefrl.teachers import SimulatedTeacher

    monkeypatch.setattr(SimulatedTeacher, "__call__", lambda self, pairs: [None] * len(pairs))  # "can't tell"
    _one_line_error(capsys, ["train", "cartpole", "--teacher", "skip", "--labels", "12", "--steps", "2048",
                             "--run-dir", str(tmp_path / "run"), "--no-progress"],
                    "the reward model needs at least 2 labels to start")


@pytest.mark.skipif(not Path("/sys").exists(), reason="needs a read-only /sys")
def test_a_run_directory_on_a_read_only_path_gives_one_line(capsys):
    _one_line_error(capsys, ["train", "cartpole", "--run-dir", "/sys/prefrl-run"], "cannot write to run directory")


def test_resume_without_a_run_gives_one_line(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--resume", str(tmp_path)], "holds no config.json")
    _one_line_error(capsys, ["train"], "train needs an env")


def test_the_store_holds_no_pickles(tmp_path):
    path = tmp_path / "store.sqlite"
    make_store(path, 10).close()
    db = sqlite3.connect(path)
    for (blob,) in db.execute("SELECT obs FROM clips"):
        assert not blob.startswith(b"\x80")  # a pickle's first byte; ours are zlib-compressed np.save bytes
    db.close()


@pytest.mark.slow
def test_two_labeling_windows_a_burst_writer_and_the_trainer_share_one_store_without_locking(tmp_path):
    path = tmp_path / "store.sqlite"
    make_store(path, 20_000).close()
    result = burst_drill(path, seconds=4, rate=100)
    assert result["errors"] == [] and result["problems"] == []
    acked = result["acknowledged"]
    assert acked["ui-1"] > 0 and acked["ui-2"] > 0
    # The burst writer, paced at 20x the windows' rate, is not held to theirs by the store's locks: a
    # ratio within the run, not a count against the clock (the count falls on a loaded machine).
    assert acked["burst"] > 3 * max(acked["ui-1"], acked["ui-2"]), acked
    # The trainer acknowledges no labels; its work is the batches of 20 queries it asked, each in one commit.
    db = sqlite3.connect(path)
    asked = db.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0] - 20_000
    db.close()
    assert asked >= 20 and asked % 20 == 0, asked


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {_Payload.marker}",))


@pytest.mark.slow
def test_opening_a_runs_policy_never_runs_code_from_it(tmp_path):
    import base64
    import pickle
    import zipfile

    from stable_baselines3 import PPO

    from prefrl.run_dir import load_policy

    run = tmp_path / "run"
    assert main(["train", "cartpole", "--reward", "true", "--steps", "2048", "--run-dir", str(run),
                 "--no-progress"]) == 0
    _Payload.marker = tmp_path / "ran"
    # Plant a pickled payload in the zip's data part, where SB3 keeps its cloudpickled objects.
    src, bad = run / "policy.zip", tmp_path / "policy.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.namelist():
            blob = zin.read(item)
            if item == "data":
                data = json.loads(blob)
                data["learning_rate"] = {":type:": "<class 'function'>",
                                         ":serialized:": base64.b64encode(pickle.dumps(_Payload())).decode()}
                blob = json.dumps(data).encode()
            zout.writestr(item, blob)
    bad.replace(src)
    policy = load_policy(run, src)
    assert not _Payload.marker.exists() and policy.predict(np.zeros(4, np.float32))[0] in (0, 1)
    PPO.load(src, device="cpu")  # SB3's own loader unpickles it: the drill is real
    assert _Payload.marker.exists()
