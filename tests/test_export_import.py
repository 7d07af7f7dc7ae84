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
