"""The experiments' shared harness: results are cached by code version, never across a change of code."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import harness  # noqa: E402


def test_code_version_is_a_stable_hash_of_the_package_source():
    v = harness.code_version()
    assert len(v) == 12 and v == harness.code_version()
    int(v, 16)


def test_parse_config_reads_json_values_and_keeps_strings():
    assert harness.parse_config("e60:reward_epochs=60,query=random,pessimism=1.5") == (
        "e60", {"reward_epochs": 60, "query": "random", "pessimism": 1.5})
    assert harness.parse_config("default:") == ("default", {})


def test_a_run_directory_changes_with_the_code_version_and_the_settings(tmp_path):
    run = harness.Run("a", "cartpole", 3, {"labels": 50})
    assert run.directory(tmp_path, "v1") != run.directory(tmp_path, "v2")
    assert run.directory(tmp_path, "v1") != harness.Run("a", "cartpole", 3, {"labels": 60}).directory(tmp_path, "v1")
    assert run.directory(tmp_path, "v1").name.endswith("-s3")


def test_a_cached_result_is_read_only_by_the_code_that_made_it(tmp_path, monkeypatch):
    run = harness.Run("tiny", "cartpole", 0, {"labels": 4, "steps": 256})
    stale = run.directory(tmp_path, "oldversion000")
    stale.mkdir(parents=True)
    (stale / "summary.json").write_text(json.dumps({"true_return_mean": 12345.0, "env": "cartpole", "seed": 0}))
    monkeypatch.setattr(harness, "code_version", lambda: "oldversion000")
    assert harness.run_all([run], tmp_path, workers=1)[0]["true_return_mean"] == 12345.0
    # The code changed: the old number is not shown; the run is trained again under the new version.
    monkeypatch.setattr(harness, "code_version", lambda: "newversion000")
    fresh = harness.run_all([run], tmp_path, workers=1)[0]
    assert fresh["true_return_mean"] != 12345.0 and not fresh["cached"] and fresh["labels_used"] == 4
    assert (run.directory(tmp_path, "newversion000") / "summary.json").exists()


def test_a_worker_refuses_to_run_code_other_than_the_sweeps(tmp_path):
    run = harness.Run("tiny", "cartpole", 0, {"labels": 4, "steps": 256})
    with pytest.raises(RuntimeError, match="the code changed"):
        harness._train_one((run, str(tmp_path / "x"), "notthisversion"))
