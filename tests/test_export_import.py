"""Labels and clips out of a run (`prefrl export --clips`) and labels from elsewhere in (`prefrl import`)."""

import json

import numpy as np
import pytest

from prefrl.cli import main
from prefrl.clips import Clip
from prefrl.store import PreferenceStore


@pytest.fixture
def run(tmp_path):
    """A run directory whose store holds four clips (two with RGB frames) and two answered pairs."""
    rng = np.random.default_rng(0)
    path = tmp_path / "run"
    path.mkdir()
    with PreferenceStore(path / "store.sqlite", env="cartpole") as store:
        clips = [Clip(rng.normal(size=(5, 4)).astype(np.float32), rng.integers(0, 2, 5), np.full(5, float(k), np.float32),
                      rng.integers(0, 255, (5, 6, 8, 3), dtype=np.uint8) if k < 2 else None, timestep=100 * k)
                 for k in range(4)]
        ids = store.add_clips(clips)
        pairs = store.add_queries([(ids[0], ids[1]), (ids[2], ids[3]), (ids[0], ids[3])], source="oracle")
        store.record_labels([(pairs[0], 1.0), (pairs[1], 0.5)], labeler="ann")  # the third stays pending
    return path, clips, ids


def test_export_with_clips_writes_each_clips_arrays_named_in_the_index(run, tmp_path, capsys):
    path, clips, ids = run
    out = tmp_path / "out"
    assert main(["export", str(path), "--out", str(out), "--clips"]) == 0
    assert json.loads(capsys.readouterr().out)["clip_arrays"] == 4
    index = [json.loads(line) for line in (out / "clips.jsonl").read_text().splitlines()]
    assert [row["id"] for row in index] == ids
    for row, clip in zip(index, clips):
        arrays = np.load(out / row["file"])
        assert np.array_equal(arrays["obs"], clip.obs) and arrays["obs"].dtype == np.float32
        assert np.array_equal(arrays["actions"], clip.actions)
        assert np.array_equal(arrays["true_rewards"], clip.true_rewards)
        assert ("frames" in arrays) == (clip.frames is not None)
        if clip.frames is not None:
            assert np.array_equal(arrays["frames"], clip.frames) and arrays["frames"].dtype == np.uint8
    assert not list((out / "clips").glob("*partial*"))
    assert main(["export", str(path), "--out", str(tmp_path / "plain")]) == 0  # without --clips: metadata only
    assert not (tmp_path / "plain" / "clips").exists()


def test_import_brings_answered_comparisons_in_once_and_checks_every_line_first(run, tmp_path, capsys):
    path, _, ids = run
    assert main(["export", str(path), "--out", str(tmp_path / "out")]) == 0
    exported = tmp_path / "out" / "comparisons.jsonl"
    other = tmp_path / "other"
    other.mkdir()
    with PreferenceStore(path / "store.sqlite", create=False) as source, \
            PreferenceStore(other / "store.sqlite", env="cartpole") as target:
        target.add_clips(source.get_clips(ids))  # the same clips, ids 1..4, no labels yet
    capsys.readouterr()
    assert main(["import", str(other), str(exported), "--labeler", "bob"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {"imported": 2, "already_in_store": 0, "not_answered_left_out": 1, "labels_in_store": 2}
    assert main(["import", str(other), str(exported), "--labeler", "bob"]) == 0  # again: nothing added
    assert json.loads(capsys.readouterr().out)["imported"] == 0
    with PreferenceStore(other / "store.sqlite", create=False) as store:
        labeled = store.comparisons("labeled")
    assert sorted((c.left_id, c.right_id, c.preference, c.labeler) for c in labeled) == [
        (ids[0], ids[1], 1.0, "bob"), (ids[2], ids[3], 0.5, "bob")]

    bad = tmp_path / "bad.jsonl"
    for lines, message in [(['{"left_id": 1, "right_id": 2, "preference": 1}', '{"left_id": 1, "right_id": 99, '
                             '"preference": 0}'], "line 2: clip ids [1, 99] are not clips of"),
                           (['{"left_id": 1, "right_id": 2, "preference": 0.7}'], "preference 0.7 must be 1"),
                           (['{"left_id": 1, "preference": 1}'], "line 1 lacks right_id"),
                           (["not json"], "line 1 is not a JSON object")]:
        bad.write_text("\n".join(lines) + "\n")
        assert main(["import", str(other), str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "nothing was imported" in err[0], err
    with PreferenceStore(other / "store.sqlite", create=False) as store:
        assert store.num_labels() == 2  # the good first line of a bad file was not imported either


def test_a_trainer_waiting_for_people_trains_on_labels_given_elsewhere_and_imported(tmp_path):
    """The loop a lab with its own labeling tool runs: export the queries a `--feedback human` trainer
    asked, answer them elsewhere (here: by the clips' true returns, from the export), import the
    answers as JSONL; the trainer takes them as it takes the window's, and its reward model is fit on them."""
    import subprocess
    import sys
    import time

    run, out = tmp_path / "run", tmp_path / "out"
    trainer = subprocess.Popen([sys.executable, "-m", "prefrl", "train", "cartpole", "--feedback", "human", "--labels",
                                "10", "--steps", "8192", "--set", "eval_episodes=1", "--no-progress", "--run-dir",
                                str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # People's answers that come after the last rollout stay in the store but are not fit on; the run
    # lasts long enough for this loop's rounds of export and import (2,048 steps did not, on a fast machine).
    imported, deadline = 0, time.time() + 600
    try:
        while trainer.poll() is None and time.time() < deadline:
            time.sleep(0.3)
            if not (run / "store.sqlite").exists() or main(["export", str(run), "--out", str(out)]) != 0:
                continue
            clips = {row["id"]: row["true_return"]
                     for row in map(json.loads, (out / "clips.jsonl").read_text().splitlines())}
            waiting = [row for row in map(json.loads, (out / "comparisons.jsonl").read_text().splitlines())
                       if row["status"] == "pending"]
            if not waiting:
                continue
            answers = tmp_path / "answers.jsonl"
            answers.write_text("".join(json.dumps({
                "left_id": q["left_id"], "right_id": q["right_id"], "labeler": "elsewhere",
                "preference": 0.5 if clips[q["left_id"]] == clips[q["right_id"]]
                else float(clips[q["left_id"]] > clips[q["right_id"]])}) + "\n" for q in waiting))
            assert main(["import", str(run), str(answers)]) == 0
            imported += len(waiting)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    assert trainer.wait() == 0, trainer.stderr.read()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labels_used"] == 10 == imported and summary["rm_labels"] == 10  # every imported label fit on
    with PreferenceStore(run / "store.sqlite", create=False) as store:
        assert {c.labeler for c in store.comparisons("labeled")} == {"elsewhere"} and store.num_pending() == 0


def test_a_users_own_env_records_frames_for_the_people_who_label_it(tmp_path):
    """The window draws the suite's classic-control clips from their states; a user's env (here
    docs/examples/my_envs.py, by gymnasium's module:EnvId) has its frames recorded as it is played."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from prefrl.labeling_ui.frames import clip_frames

    examples = Path(__file__).resolve().parent.parent / "docs" / "examples"
    env = {**os.environ, "PYTHONPATH": f"{examples}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = tmp_path / "run"
    trainer = subprocess.Popen([sys.executable, "-m", "prefrl", "train", "my_envs:SlowPole-v0", "--feedback", "human",
                                "--labels", "8", "--steps", "4096", "--no-progress", "--run-dir", str(run)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and trainer.poll() is None:
            time.sleep(0.3)
            store_file = run / "store.sqlite"
            # The trainer creates the file, then writes its schema: an empty file is not yet a store to open.
            if store_file.exists() and store_file.stat().st_size > 0:
                with PreferenceStore(store_file, create=False) as store:
                    if store.num_pending():
                        query = store.comparisons("pending")[0]
                        clips = store.get_clips([query.left_id, query.right_id], frames=True)
                        break
        else:
            pytest.fail(f"no query was asked: {trainer.stderr.read() if trainer.poll() is not None else 'timeout'}")
    finally:
        trainer.kill()
        trainer.wait()
    for clip in clips:
        frames = clip_frames(clip, "my_envs:SlowPole-v0")  # the stored frames: no env is made
        assert frames.shape == (50, 400, 600, 3) and frames.dtype == np.uint8 and frames.std() > 0
