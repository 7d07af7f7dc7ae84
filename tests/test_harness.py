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


@pytest.mark.slow
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
        harness._run_one((run, str(tmp_path / "x"), "notthisversion", harness.train_run, harness.code_version))


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
    assert cartpole.endswith("| 200 |")  # the last cell counts the runs made here only, not the copied-in one
    assert "† Made on another machine and copied in: box" in text
    assert "not run yet" in text  # the true-reward row and the other envs


@pytest.mark.slow
def test_the_code_version_leaves_out_only_what_synthetic_runs_never_import(tmp_path):
    # labeling_ui/ is not in the version; a synthetic run that imported it would make that a lie
    script = (
        "import sys\n"
        "from prefrl import TrainConfig, train\n"
        f"train(TrainConfig('cartpole', labels=12, steps=2048, run_dir={str(tmp_path / 'run')!r}, progress_bar=False))\n"
        "mods = [m for m in sys.modules if m.split('.')[:2] == ['prefrl', 'labeling_ui'] or m == 'pygame']\n"
        "assert 'prefrl.training' in sys.modules and not mods, mods\n")
    import subprocess

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert harness.UNVERSIONED == ("labeling_ui",)


# Jobs that stand in for training: top-level, so worker processes can import them.
def counting_job(run, run_dir):
    """Counts its calls in a file beside the cache (workers share no memory) and returns settings."""
    calls = Path(run_dir).parent.parent / "calls.txt"
    with calls.open("a") as f:
        f.write(f"{run.label} {run.env} {run.seed}\n")
    return {"value": run.settings.get("value", 0) * 10 + run.seed, "pid": __import__("os").getpid()}


def threads_job(run, run_dir):
    import torch

    return {"threads": torch.get_num_threads()}


def failing_job(run, run_dir):
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "half-written").write_text("x")
    raise ValueError("the job failed part-way")


def fixed_version():
    return "fixedversion"


def _calls(out):
    path = Path(out) / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_the_grid_is_every_config_on_every_env_with_every_seed():
    configs = {"a": {"value": 1}, "b": {"value": 2}}
    runs = harness.grid(["cartpole", "pendulum"], [0, 1, 2], configs)
    assert len(runs) == 12
    assert {(r.env, r.seed, r.label) for r in runs} == {(e, s, c) for e in ("cartpole", "pendulum")
                                                      for s in (0, 1, 2) for c in "ab"}
    # seed by seed: both configurations of seed 0 before any of seed 1
    assert [(r.seed, r.label) for r in runs[:4]] == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    assert runs[0].settings == {"value": 1} and runs[0].settings is not configs["a"]
    assert all(r.threads == 1 for r in runs) and harness.grid(["x"], [0], configs, threads=None)[0].threads is None


def test_the_cache_key_holds_the_version_the_settings_and_a_thread_count_other_than_one(tmp_path):
    run = harness.Run("a", "cartpole", 0, {"labels": 50})
    assert run.directory(tmp_path, "v1") == harness.Run("a", "cartpole", 0, {"labels": 50}).directory(tmp_path, "v1")
    assert run.directory(tmp_path, "v1") != harness.Run("a", "cartpole", 0, {"labels": 50}, None).directory(tmp_path, "v1")
    assert run.directory(tmp_path, "v1") != harness.Run("a", "cartpole", 0, {"labels": 50}, 2).directory(tmp_path, "v1")
    # a gymnasium id with a slash is one directory, not two
    assert harness.Run("a", "ALE/Pong-v5", 0).directory(tmp_path, "v1").parent == tmp_path / "v1"


def test_code_version_with_a_scripts_own_code_changes_with_that_code():
    base = harness.code_version()
    assert harness.code_version(counting_job) == harness.code_version(counting_job) != base
    assert harness.code_version(counting_job) != harness.code_version(threads_job)
    assert harness.source_hash("a", "b") != harness.source_hash("ab") and len(harness.source_hash("a")) == 12


def test_a_jobs_result_is_made_once_per_version_and_never_read_by_another(tmp_path):
    runs = harness.grid(["e"], [0, 1], {"c": {"value": 3}})
    first = harness.run_all(runs, tmp_path, workers=1, job=counting_job, version=lambda: "version0001")
    assert [(r["value"], r["seed"], r["label"], r["env"], r["cached"]) for r in first] == [
        (30, 0, "c", "e", False), (31, 1, "c", "e", False)]
    assert len(_calls(tmp_path)) == 2
    assert (runs[0].directory(tmp_path, "version0001") / "summary.json").exists()
    again = harness.run_all(runs, tmp_path, workers=1, job=counting_job, version=lambda: "version0001")
    assert [r["value"] for r in again] == [30, 31] and all(r["cached"] for r in again)
    assert len(_calls(tmp_path)) == 2  # read, not made again
    # the code changed: the old results are not read, every run is made again
    (runs[0].directory(tmp_path, "version0001") / "summary.json").write_text(json.dumps({"value": -1}))
    newer = harness.run_all(runs, tmp_path, workers=1, job=counting_job, version=lambda: "version0002")
    assert [r["value"] for r in newer] == [30, 31] and not any(r["cached"] for r in newer)
    assert len(_calls(tmp_path)) == 4
    assert [r["value"] for r in harness.made(runs, tmp_path, version=lambda: "version0001")] == [-1, 31]
    assert harness.made(runs, tmp_path, version=lambda: "version0003") == []


def test_a_failed_job_leaves_no_result_and_its_leftovers_are_cleared_before_the_next_try(tmp_path):
    run = harness.Run("c", "e", 0)
    assert harness.run_all([run], tmp_path, workers=1, job=failing_job, version=lambda: "v") == [
        {"label": "c", "env": "e", "seed": 0, "cached": False, "failed": "ValueError: the job failed part-way"}]
    run_dir = run.directory(tmp_path, "v")
    assert (run_dir / "half-written").exists() and not (run_dir / "summary.json").exists()
    assert harness.run_all([run], tmp_path, workers=1, job=counting_job, version=lambda: "v")[0]["cached"] is False
    assert not (run_dir / "half-written").exists()


def test_a_training_run_killed_after_a_checkpoint_is_resumed_not_started_over(tmp_path, monkeypatch):
    import prefrl

    resumed = []

    def fake_resume(run_dir):
        resumed.append(Path(run_dir))
        assert (Path(run_dir) / "store.sqlite").read_text() == "labels"  # nothing was cleared
        return {"true_return_mean": 1.0}

    monkeypatch.setattr(prefrl, "resume", fake_resume)
    run = harness.Run("c", "pong", 0)
    run_dir = run.directory(tmp_path, "v")
    (run_dir / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "store.sqlite"):
        (run_dir / name).write_text("labels" if name == "store.sqlite" else "{}")
    for step in (20000, 100000, 40000):
        (run_dir / "checkpoints" / f"policy_{step}_steps.zip").write_text("")
    assert harness._checkpointed(run_dir).name == "policy_100000_steps.zip"  # the last, by step
    result = harness.run_all([run], tmp_path, workers=1, version=lambda: "v")[0]
    assert resumed == [run_dir] and result["true_return_mean"] == 1.0 and not result["cached"]
    # before its first checkpoint a run starts over (its leftovers cleared), as any other job's
    other = harness.Run("c", "e", 1)
    (other.directory(tmp_path, "v") / "checkpoints").mkdir(parents=True)
    (other.directory(tmp_path, "v") / "config.json").write_text("{}")
    assert harness._checkpointed(other.directory(tmp_path, "v")) is None
    assert harness.run_all([other], tmp_path, workers=1, job=counting_job, version=lambda: "v")[0]["cached"] is False
    assert resumed == [run_dir]


def test_runs_are_made_in_worker_processes_and_come_back_in_the_order_given(tmp_path):
    import os

    runs = harness.grid(["e"], [0, 1, 2], {"a": {"value": 1}, "b": {"value": 2}})
    out = harness.run_all(runs, tmp_path, workers=2, job=counting_job, version=fixed_version)
    assert [r["value"] for r in out] == [10, 20, 11, 21, 12, 22]
    assert os.getpid() not in {r["pid"] for r in out}
    assert len(_calls(tmp_path)) == 6


def test_a_run_computes_with_its_thread_count_and_gives_the_process_its_own_back(tmp_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one, default = harness.run_all([harness.Run("one", "e", 0), harness.Run("all", "e", 0, threads=None)],
                                       tmp_path, workers=1, job=threads_job, version=lambda: "v")
        assert one["threads"] == 1 and default["threads"] == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_shared_options_take_the_scripts_defaults():
    p = harness.parser("A script.\n\nMore.", out="runs/x", seeds=[0, 1], envs=["cartpole"])
    args = p.parse_args([])
    assert (args.out, args.seeds, args.envs, args.workers) == ("runs/x", [0, 1], ["cartpole"], 2)
    assert p.description == "A script."
    args = p.parse_args(["--env", "pong", "breakout", "--seed", "3", "--workers", "1"])
    assert (args.envs, args.seeds, args.workers) == (["pong", "breakout"], [3], 1)
    bare = harness.parser("A script.", out="runs/y", workers=None).parse_args([])
    assert vars(bare) == {"out": "runs/y"}


def test_write_readme_replaces_only_its_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- t:begin -->\nold\n<!-- t:end -->\nbottom\n<!-- u:begin -->\nkeep\n<!-- u:end -->\n")
    harness.write_readme("t", "| a |\n", readme)
    assert readme.read_text() == ("top\n<!-- t:begin -->\n| a |\n<!-- t:end -->\nbottom\n"
                                  "<!-- u:begin -->\nkeep\n<!-- u:end -->\n")
    with pytest.raises(SystemExit, match="no <!-- v:begin -->"):
        harness.write_readme("v", "x", readme)


def test_markdown_table_has_a_header_a_rule_and_a_line_a_row():
    assert harness.markdown_table(["a", "b"], [[1, "x"], [2.5, None]]) == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | None |\n"


def test_the_lm_table_goes_through_the_cache(tmp_path, monkeypatch, capsys):
    import lm_table

    made = []

    def fake_run_lm(config):
        made.append((config.method, config.seed))
        return {"implicit_reward_accuracy": 0.9, "true_score_sft": 0.4, "true_score_final": 0.6, "kl_to_sft": 1.0,
                "wall_seconds": 3.0}

    monkeypatch.setattr(lm_table, "run_lm", fake_run_lm)
    monkeypatch.setattr(harness, "code_version", lambda *extra: "lmversion001")
    argv = ["lm_table.py", "--seeds", "0", "1", "--methods", "dpo", "--workers", "1", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    lm_table.main()
    assert made == [("dpo", 0), ("dpo", 1)]
    assert "| dpo | 0, 1 | 0.900 / 0.900 | 0.400 / 0.400 | 0.600 / 0.600 | 1.00 / 1.00 | 3 / 3 |" in capsys.readouterr().out
    lm_table.main()
    assert len(made) == 2  # the second time every run is read from the cache
    monkeypatch.setattr(harness, "code_version", lambda *extra: "lmversion002")
    lm_table.main()
    assert len(made) == 4  # new code: made again


# Failed runs, on both backends: reported, not lost, and made again by a rerun.
def flaky_job(run, run_dir):
    """Counts its calls; fails on seed 1 until the file ``fixed`` is beside the cache; returns what
    sweep.py's table reads."""
    out = Path(run_dir).parent.parent
    out.mkdir(parents=True, exist_ok=True)
    with (out / "calls.txt").open("a") as f:
        f.write(f"{run.label} {run.env} {run.seed}\n")
    if run.seed == 1 and not (out / "fixed").exists():
        raise ValueError(f"seed {run.seed} of {run.label} broke")
    value = run.settings["value"] * 10 + run.seed
    return {"true_return_mean": float(value), "wall_seconds": 1.0, "pid": __import__("os").getpid()}


def killed_job(run, run_dir):
    """Seed 1's process is killed (as the kernel kills a run out of memory)."""
    import os
    import signal

    if run.seed == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"true_return_mean": float(run.seed), "wall_seconds": 1.0}


FLAKY = {"a": {"value": 1}, "b": {"value": 2}}


def _sweep_flaky(out, **backend):
    """Two runs of the flaky grid: the first fails seed 1's runs, the second after the fix makes only them."""
    import sweep

    runs = harness.grid(["e"], [0, 1, 2], FLAKY)
    first = harness.run_all(runs, out, job=flaky_job, version=fixed_version, **backend)
    table = sweep.render(first, "e", list(FLAKY), [0, 1, 2], threshold=15.0)
    assert len(_calls(out)) == 6
    (Path(out) / "fixed").write_text("")
    second = harness.run_all(runs, out, job=flaky_job, version=fixed_version, **backend)
    return first, table, second


def _check_flaky(first, table, second, out, capsys):
    assert [(r["label"], r["seed"]) for r in first] == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert [r.get("true_return_mean") for r in first] == [10.0, 20.0, None, None, 12.0, 22.0]
    assert first[2] == {"label": "a", "env": "e", "seed": 1, "cached": False, "failed": "ValueError: seed 1 of a broke"}
    assert first[3]["failed"] == "ValueError: seed 1 of b broke"
    printed = capsys.readouterr().out
    assert '"label": "a", "env": "e", "seed": 1, "cached": false, "failed": "ValueError: seed 1 of a broke"' in printed
    assert "2 of 6 runs failed (a on e, seed 1; b on e, seed 1): rerun" in printed
    # the table shows the failed runs in their seeds' place and counts over the runs that finished
    assert "| a | 0 of 2, 1 failed | 11.0 | 10, failed, 12 | 1 |" in table
    assert "| b | 2 of 2, 1 failed | 21.0 | 20, failed, 22 | 1 |" in table
    # the rerun read the finished runs and made only the failed ones again
    assert sorted(_calls(out)[6:]) == ["a e 1", "b e 1"]
    assert [r["true_return_mean"] for r in second] == [10.0, 20.0, 11.0, 21.0, 12.0, 22.0]
    assert [r["cached"] for r in second] == [True, True, False, False, True, True]
    assert not any("failed" in r for r in second)


def test_a_failed_run_is_reported_and_the_sweep_goes_on_in_worker_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # without --ray, Ray is never imported
    first, table, second = _sweep_flaky(tmp_path, workers=2)
    _check_flaky(first, table, second, tmp_path, capsys)
    # one after another in this process: the same
    inline = tmp_path / "inline"
    assert [r.get("failed") for r in harness.run_all(harness.grid(["e"], [0, 1], FLAKY), inline, workers=1,
                                                      job=flaky_job, version=fixed_version)] == [
        None, None, "ValueError: seed 1 of a broke", "ValueError: seed 1 of b broke"]


def test_a_killed_worker_process_fails_its_run_alone(tmp_path):
    out = harness.run_all(harness.grid(["e"], [0, 1, 2], {"a": {}}), tmp_path, workers=2, job=killed_job,
                          version=fixed_version)
    assert [r.get("true_return_mean") for r in out] == [0.0, None, 2.0]
    assert out[1]["failed"] == "its worker process died (killed, out of memory or crashed)"


def test_a_run_asks_ray_for_a_gpu_where_its_device_is_cuda():
    assert harness.Run("a", "e", 0).resources() == (1, 0)
    assert harness.Run("a", "e", 0, {"device": "cuda"}).resources() == (1, 1)
    assert harness.Run("a", "e", 0, {"device": "cuda:1"}, cpus=4).resources() == (4, 1)
    assert harness.Run("a", "e", 0, {"device": "cuda"}, gpus=0.5).resources() == (1, 0.5)
    # what a task asks for is not what the run computes: the cache key is the same
    assert harness.Run("a", "e", 0, cpus=4, gpus=1).directory("o", "v") == harness.Run("a", "e", 0).directory("o", "v")
    args = harness.parser("A script.", out="runs/x").parse_args(["--ray", "ray://head:10001"])
    assert args.ray == "ray://head:10001" and harness.parser("A script.", out="runs/x").parse_args([]).ray is None


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False)  # a new local instance
    yield ray
    ray.shutdown()


def test_a_sweep_on_ray_reports_failed_runs_and_gives_the_local_backends_results(ray_instance, tmp_path, capsys):
    import os

    first, table, second = _sweep_flaky(tmp_path / "ray", ray="local")
    _check_flaky(first, table, second, tmp_path / "ray", capsys)
    assert os.getpid() not in {r["pid"] for r in first if "pid" in r}  # made by Ray's workers
    # the same grid in local worker processes: the same results and the same table
    local_first, local_table, local_second = _sweep_flaky(tmp_path / "local", workers=2)

    def same(results):
        return [{k: v for k, v in r.items() if k != "pid"} for r in results]

    assert same(first) == same(local_first) and same(second) == same(local_second) and table == local_table


def test_a_killed_ray_worker_fails_its_run_alone(ray_instance, tmp_path):
    out = harness.run_all(harness.grid(["e"], [0, 1, 2], {"a": {}}), tmp_path, job=killed_job, version=fixed_version,
                          ray="local")
    assert [r.get("true_return_mean") for r in out] == [0.0, None, 2.0]
    assert out[1]["failed"].startswith("WorkerCrashedError: ")


@pytest.mark.slow
def test_a_training_run_goes_through_ray(ray_instance, tmp_path):
    run = harness.Run("tiny", "cartpole", 0, {"labels": 6, "steps": 512, "eval_episodes": 1, "device": "cpu"})
    result, = harness.run_all([run], tmp_path, ray="local")
    assert not result["cached"] and result["labels_used"] == 6 and "true_return_mean" in result
    assert (run.directory(tmp_path.resolve(), harness.code_version()) / "summary.json").exists()
    assert harness.run_all([run], tmp_path, ray="local")[0]["cached"]


def test_the_overhead_benchmark_sums_up_a_configuration_over_its_pairs():
    import benchmark_overhead

    speeds = {0: (100.0, 90.0), 1: (200.0, 210.0), 2: (150.0, 120.0)}  # seed -> (true, learned)
    cpu = {"true": 1000.0, "learned": 1250.0}  # CPU seconds in learn: the loop adds a quarter, and more
    results = [{"env": "pong", "seed": s, "label": f"c | {kind}", "steps_per_second": speed,
                "cpu_seconds": {"learn": cpu[kind] + (250.0 * s if kind == "learned" else 0.0)}}
               for s, pair in speeds.items() for kind, speed in zip(("true", "learned"), pair)]
    table = benchmark_overhead.over_seeds(results, ["pong"], [0, 1, 2], ["c"])
    row = table.splitlines()[-1]
    # the pairs' ratios are 0.9, 1.05 and 0.8; the means 140 / 150
    assert "0.800 / **0.900** / 1.050" in row
    assert "**0.933**" in row
    assert "100.0–200.0" in row and "90.0–210.0" in row
    assert "0.571 / **0.667** / 0.800" in row  # 1000/1250, 1000/1500, 1000/1750


def test_the_seed_record_replaces_a_rerun_seed_and_counts_each_group_apart(tmp_path):
    import atari_curves

    path = tmp_path / "seeds.csv"
    row = {"code": "v1", "env": "breakout", "steps": 1000, "set": "a=1", "learned_set": "", "seed": 0,
           "learned_late": "1.00", "true_late": "2.00", "learned_eval": "1.0", "true_eval": "2.0", "labels": 10}
    atari_curves.write_record(path, [row, {**row, "seed": 1, "learned_late": "1.80"}])
    atari_curves.write_record(path, [{**row, "learned_late": "1.60"}])  # seed 0 again: its row is replaced, not added
    atari_curves.write_record(path, [{**row, "learned_set": "reward_epochs=3", "learned_late": "0.80"}])
    rows = atari_curves.read_record(path)
    assert sorted((r["learned_set"], r["seed"], r["ratio"]) for r in rows) == [
        ("", "0", "0.800"), ("", "1", "0.900"), ("reward_epochs=3", "0", "0.400")]
    lines = atari_curves.count_lines(rows, 0.7)
    paired = [line for line in lines if "(paired)" in line]
    assert len(paired) == 2
    assert ">= 0.7 on 2 of 2 seeds" in paired[0] and "--learned-set -" in paired[0]
    assert ">= 0.7 on 0 of 1 seeds" in paired[1] and "reward_epochs=3" in paired[1]


def test_a_learned_run_alone_is_recorded_and_counted_against_the_mean_of_the_true_reward_runs(tmp_path):
    import atari_curves

    path = tmp_path / "seeds.csv"
    both = {"code": "v1", "env": "breakout", "steps": 1000, "set": "a=1", "learned_set": "", "seed": 0,
            "learned_late": "3.00", "true_late": "2.00", "learned_eval": "3.0", "true_eval": "2.0", "labels": 10}
    alone = {**both, "seed": 1, "learned_late": "2.80", "true_late": "", "true_eval": ""}
    atari_curves.write_record(path, [both, {**both, "seed": 2, "learned_late": "5.00", "true_late": "6.00"}, alone])
    rows = {r["seed"]: r for r in atari_curves.read_record(path)}
    assert rows["1"]["ratio"] == "" and rows["1"]["learned_late"] == "2.80"  # no true run: no paired ratio
    lines = atari_curves.count_lines(list(rows.values()), 0.7)
    # paired: s0 1.5, s2 0.833; against the mean true score (2 + 6) / 2 = 4: 0.75, 0.7, 1.25
    assert any("(paired) >= 0.7 on 2 of 2 seeds" in line for line in lines)
    pooled = next(line for line in lines if "mean true" in line)
    assert "on 3 of 3 seeds" in pooled and "mean true 4.00 over 2 seeds" in pooled
    assert "s1 0.700" in pooled and "min 0.700" in pooled

    # the seed's true run comes later: the row gains it and keeps its learned figures
    atari_curves.write_record(path, [{**alone, "learned_late": "", "learned_eval": "", "labels": "",
                                      "true_late": "1.40", "true_eval": "1.4"}])
    rows = {r["seed"]: r for r in atari_curves.read_record(path)}
    assert (rows["1"]["learned_late"], rows["1"]["true_late"], rows["1"]["ratio"]) == ("2.80", "1.40", "2.000")
    # a variant's learned runs are counted against the same true-reward runs, not only its own group's
    atari_curves.write_record(path, [{**alone, "learned_set": "b=2", "seed": 5, "learned_late": "1.00"}])
    lines = atari_curves.count_lines(atari_curves.read_record(path), 0.7)
    variant = next(line for line in lines if "b=2" in line and "mean true" in line)
    assert "on 0 of 1 seeds" in variant and "over 3 seeds" in variant  # (2 + 1.4 + 6) / 3 = 3.13
    # the count printed after --record: the variant's lines alone, still paired with the other rows' true runs
    atari_curves.write_record(path, [{**alone, "learned_set": "c=3", "learned_late": "0.70"}])  # seed 1 again
    lines = atari_curves.count_lines(atari_curves.read_record(path), 0.7, only={("v1", "breakout", "1000", "a=1", "c=3")})
    assert len(lines) == 2 and all("c=3" in line for line in lines)
    assert "(paired) >= 0.7 on 0 of 1 seeds" in lines[0] and "s1 0.500" in lines[0]  # 0.70 / seed 1's true 1.40
    # ...and each is paired with its own seed's true run, from the other group's row: seed 1's 1.40
    atari_curves.write_record(path, [{**alone, "learned_set": "b=2", "seed": 1, "learned_late": "1.05"}])
    rows = atari_curves.read_record(path)
    assert next(r for r in rows if r["learned_set"] == "b=2" and r["seed"] == "1")["ratio"] == ""  # the row stays as made
    variant = next(line for line in atari_curves.count_lines(rows, 0.7) if "b=2" in line and "(paired)" in line)
    assert "on 1 of 1 seeds" in variant and "s1 0.750" in variant  # seed 5 has no true run: not paired


def test_the_curves_script_records_a_learned_run_made_alone(tmp_path, monkeypatch, capsys):
    import atari_curves

    run_dir = tmp_path / "runs" / "v9" / "breakout-learned-abc-s4"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.csv").write_text("timesteps,labels,true_episode_return\n10,5,1.0\n50,6,\n90,7,3.0\n100,8,5.0\n")
    result = {"env": "breakout", "seed": 4, "label": "learned", "run_dir": str(run_dir), "true_return_mean": 2.5,
              "labels_used": 8, "steps_per_second": 99.0}
    asked = []
    monkeypatch.setattr(atari_curves, "run_all", lambda runs, out, **kw: asked.extend(runs) or [result])
    record = tmp_path / "seeds.csv"
    record.write_text("code,env,steps,set,learned_set,seed,learned_late,true_late,ratio,learned_eval,true_eval,labels\n"
                      "v9,breakout,100,,,0,,8.00,,,7.0,\n")
    monkeypatch.setattr("sys.argv", ["atari_curves.py", "--env", "breakout", "--steps", "100", "--seeds", "4",
                                     "--arms", "learned", "--out", str(tmp_path / "runs"), "--record", str(record)])
    atari_curves.main()
    assert [r.label for r in asked] == ["learned"]  # no true-reward run made
    rows = {r["seed"]: r for r in atari_curves.read_record(record)}
    # the last 10% of 100 steps: the games logged at 90 and 100
    assert (rows["4"]["learned_late"], rows["4"]["true_late"], rows["4"]["ratio"], rows["4"]["labels"]) == (
        "4.00", "", "", "8")
    out = capsys.readouterr().out
    assert "learned / mean true >= 0.7 on 0 of 1 seeds (mean true 8.00 over 1 seeds; min 0.500; s4 0.500)" in out
    assert (run_dir.parent / "breakout-s4-learning_curves.png").is_file()
