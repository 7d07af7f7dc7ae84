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
    # a string setting of TrainConfig stays a string, even where it reads as JSON
    assert harness.parse_config("t:reward=true,labels=50") == ("t", {"reward": "true", "labels": 50})


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


def test_made_lists_only_this_versions_runs_and_says_where_a_copied_run_was_made(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "code_version", lambda: "thisversion0")
    here, copied, missing = (harness.Run(f"r{i}", "cartpole", i, {}) for i in range(3))
    for run, machine in ((here, None), (copied, "the other box")):
        d = run.directory(tmp_path, "thisversion0")
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"true_return_mean": 1.0, "seed": run.seed}))
        if machine:
            (d / "MACHINE").write_text(machine + "\n")
    stale = missing.directory(tmp_path, "oldversion00")
    stale.mkdir(parents=True)
    (stale / "summary.json").write_text(json.dumps({"true_return_mean": 2.0, "seed": 2}))
    out = harness.made([here, copied, missing], tmp_path)
    assert [r["label"] for r in out] == ["r0", "r1"]
    assert "machine" not in out[0] and out[1]["machine"] == "the other box"


def test_the_results_table_marks_runs_not_made_yet_and_runs_made_elsewhere():
    import results_table

    results = [{"label": "cartpole learned", "seed": 0, "true_return_mean": 500.0, "timesteps": 300_032,
                "wall_seconds": 200.0},
               {"label": "cartpole learned", "seed": 2, "true_return_mean": 90.0, "timesteps": 300_032,
                "wall_seconds": 100.0, "machine": "box"}]
    text = results_table.render(results, results_table.runs())
    cartpole = next(line for line in text.splitlines() if line.startswith("| cartpole |"))
    assert "500, …, 90, …, …, …, …, …, …, …†" in cartpole and "1 of 2 run so far" in cartpole
    assert cartpole.endswith("| 200 |")  # the wall time is of this machine's runs only
    assert "† Made on another machine and copied in: box" in text
    assert "not run yet" in text  # the true-reward row and the other envs


def test_the_code_version_leaves_out_only_what_synthetic_runs_never_import(tmp_path):
    # labeling_ui/ is not in the version; a synthetic run that imported it would make that a lie
    script = (
        "import sys\n"
        "from prefrl.train import TrainConfig, train\n"
        f"train(TrainConfig('cartpole', labels=12, steps=2048, run_dir={str(tmp_path / 'run')!r}, progress_bar=False))\n"
        "mods = [m for m in sys.modules if m.split('.')[:2] == ['prefrl', 'labeling_ui'] or m == 'pygame']\n"
        "assert 'prefrl.train' in sys.modules and not mods, mods\n")
    import subprocess

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert harness.UNVERSIONED == ("labeling_ui",)
