"""The entry point on tiny budgets, and its one-line errors."""

import csv
import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from prefrl.cli import main
from prefrl.store import SCHEMA_VERSION, PreferenceStore


def _run(args):
    return subprocess.run([sys.executable, "-m", "prefrl.cli", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_train_cartpole_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "cartpole", "--labels", "12", "--steps", "2048", "--seed", "1",
                 "--run-dir", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "true return" in out and str(run) in out
    summary = json.loads((run / "summary.json").read_text())
    for key in ("env", "seed", "reward", "timesteps", "labels_used", "true_return_mean", "true_return_std",
                "eval_episodes", "wall_seconds", "steps_per_second"):
        assert key in summary
    assert summary["reward"] == "learned" and summary["labels_used"] == 12 and summary["timesteps"] >= 2048
    picks = summary["picks"]  # the labels during RL were picked by disagreement, from kept returns or not
    assert set(picks) == {"kept_returns", "scored_again", "clips_scored_again"}
    assert picks["kept_returns"] + picks["scored_again"] >= 1
    assert summary["cpu_seconds"]["learn"] > 0
    with PreferenceStore(run / "store.sqlite") as store:
        assert store.num_labels() == 12
        assert {c.source for c in store.comparisons()} == {"oracle"}
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert rows and rows[-1]["labels"] == "12" and rows[-1]["rm_val_accuracy"] != ""
    assert int(rows[-1]["timesteps"]) == summary["timesteps"]
    for name in ("policy.zip", "reward_model.pt", "reward_model.json", "config.json"):
        assert (run / name).exists()
    assert any((run / "tb").rglob("events.out.tfevents.*"))
    assert len(list((run / "checkpoints").glob("policy_*_steps.zip"))) >= 4


@pytest.mark.slow
def test_train_true_reward_baseline(tmp_path):
    run = tmp_path / "true"
    assert main(["train", "pendulum", "--reward", "true", "--steps", "4096", "--run-dir", str(run),
                 "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["reward"] == "true" and summary["labels_used"] == 0 and summary["picks"] is None
    assert not (run / "store.sqlite").exists()


@pytest.mark.slow
def test_train_with_a2c_the_papers_learner(tmp_path):
    from stable_baselines3 import A2C

    run = tmp_path / "a2c"
    assert main(["train", "cartpole", "--algo", "a2c", "--labels", "12", "--steps", "3000", "--run-dir", str(run),
                 "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["algo"] == "a2c" and summary["labels_used"] == 12 and summary["timesteps"] >= 3000
    assert isinstance(A2C.load(run / "policy.zip", device="cpu"), A2C)
    with (run / "metrics.csv").open() as f:
        steps = [int(r["timesteps"]) for r in csv.DictReader(f)]
    assert len(steps) >= 2 and min(b - a for a, b in zip(steps, steps[1:])) >= 1000  # A2C's rows are thinned


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "cartpol"], "unknown env 'cartpol'"),
        (["train", "cartpole", "--labels", "0"], "--labels 0 is too few"),
        (["train", "cartpole", "--query", "best"], "argument --query: invalid choice: 'best'"),
        (["train", "cartpole", "--reward", "fake"], "argument --reward: invalid choice: 'fake'"),
        (["train", "cartpole", "--algo", "ddpg"], "argument --algo: invalid choice: 'ddpg'"),
        (["train", "cartpole", "--initial-labels", "1"], "--initial-labels 1 must be at least 2"),
        (["train", "cartpole", "--labels", "10", "--initial-labels", "11"], "at most the label budget"),
        (["train", "cartpole", "--feedback", "crowd"], "argument --feedback: invalid choice: 'crowd'"),
        (["train", "cartpole", "--labels", "many"], "argument --labels: invalid int value: 'many'"),
        (["train", "cartpole", "--teacher", "noisy:beta=-1"], "--teacher: teacher beta=-1.0 is out of range"),
        (["train", "cartpole", "--pessimism", "-1"], "--pessimism -1.0 must be a finite number ≥ 0"),
        (["train", "cartpole", "--rank-size", "1"], "--rank-size 1 must be at least 2"),
        (["train", "cartpole", "--max-minutes", "0"], "--max-minutes 0.0 must be a positive number"),
        (["train", "pong", "--set", "rollout_threads=-1"], "--set rollout_threads=-1: must be a whole number ≥ 0"),
        (["train", "cartpole", "--rank-size", "5", "--feedback", "human"], "--rank-size 5 is too many clips"),
        (["label", "no/such/run", "--rank-size", "5"], "--rank-size 5 must be 2 (pairs), 3 or 4"),
        (["label", "no/such/run"], "holds no store.sqlite"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line_and_non_zero(args, message):
    result = _run(args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.slow
def test_foreign_and_newer_stores_are_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    sqlite3.connect(foreign / "store.sqlite").execute("CREATE TABLE mine (x)")
    result = _run(["train", "cartpole", "--run-dir", str(foreign)])
    assert result.returncode == 2 and "already holds a run (store.sqlite)" in result.stderr
    result = _run(["ratings", str(foreign)])
    assert result.returncode == 2 and "is not a prefrl store" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    newer = tmp_path / "newer"
    newer.mkdir()
    PreferenceStore(newer / "store.sqlite", env="cartpole").close()
    db = sqlite3.connect(newer / "store.sqlite")
    db.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    result = _run(["ratings", str(newer)])
    assert result.returncode == 2 and f"schema 7, newer than this prefrl's {SCHEMA_VERSION}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_envs_lists_the_suite(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for name in ("cartpole", "acrobot", "mountaincar", "pendulum"):
        assert name in out
    assert "Atari on a CUDA device also sets vector_env=true, n_envs=16" in out


@pytest.mark.slow
def test_train_with_a_skipping_teacher_records_its_skips(tmp_path):
    run = tmp_path / "skip"
    # skip=0.9: a pair is skipped unless one of its clips scored in the top tenth of its batch's range
    assert main(["train", "cartpole", "--teacher", "skip:skip=0.9", "--labels", "12", "--steps", "2048",
                 "--run-dir", str(run), "--no-progress"]) == 0
    with PreferenceStore(run / "store.sqlite") as store:
        comparisons = store.comparisons()
    assert {c.labeler for c in comparisons} == {"skip:skip=0.9"}
    skipped = [c for c in comparisons if c.status == "skipped"]
    assert skipped and json.loads((run / "summary.json").read_text())["labels_used"] == len(comparisons) - len(skipped)


@pytest.mark.slow
def test_train_on_k_wise_rankings(tmp_path):
    run = tmp_path / "k3"
    assert main(["train", "cartpole", "--rank-size", "3", "--labels", "12", "--steps", "2048",
                 "--run-dir", str(run), "--no-progress"]) == 0
    with PreferenceStore(run / "store.sqlite") as store:
        rankings = store.rankings("labeled")
        assert store.comparisons() == [] and len(rankings) == 12
        for r in rankings:  # the oracle ranked each group of three by true return
            returns = [c.true_return for c in store.get_clips(list(r.ordered))]
            assert len(r.clip_ids) == 3 and returns == sorted(returns, reverse=True)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rank_size"] == 3 and summary["labels_used"] == 12


@pytest.mark.parametrize("labels", [2, 3, 4, 20])
@pytest.mark.slow
def test_small_label_budgets_run_and_spread_their_online_labels(tmp_path, labels, monkeypatch):
    import prefrl.training as training_module
    from prefrl import TrainConfig, train
    from prefrl.presets import preset_for

    before_rl = []
    real_pretrain = training_module.pretrain

    def pretrain(stages, *args, **kwargs):  # what the store holds when RL starts
        real_pretrain(stages, *args, **kwargs)
        before_rl.append(stages.querier.store.num_labels())

    monkeypatch.setattr(training_module, "pretrain", pretrain)
    run = tmp_path / f"l{labels}"
    summary = train(TrainConfig("cartpole", labels=labels, steps=4096, seed=0, run_dir=str(run), progress_bar=False))
    assert summary["labels_used"] == labels
    initial = min(labels, max(2, round(preset_for("cartpole").initial_fraction * labels)))
    assert before_rl == [initial]  # asked on random-policy clips: the preset's share, and at least 2
    if labels == 20:  # the online ones in at least 5 rounds, not all in the last rollout
        counts = [initial] + sorted({int(r["labels"]) for r in csv.DictReader((run / "metrics.csv").open())} - {initial})
        assert len(counts) >= 6 and max(np.diff(counts)) <= (labels - initial + 4) // 5 + 2


@pytest.mark.slow
def test_one_label_is_refused_with_the_least_and_why():
    result = _run(["train", "cartpole", "--labels", "1"])
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "the least is 2" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_max_minutes_ends_learn_at_the_budget_and_the_run_still_finishes(tmp_path):
    # A budget already spent once learn starts (the pre-training fit takes longer than 0.6 ms): learn
    # stops at its first step, and the final refit, the evaluation and the summary still happen.
    run = tmp_path / "budget"
    assert main(["train", "cartpole", "--labels", "6", "--steps", "50000", "--max-minutes", "0.00001",
                 "--run-dir", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_at_max_minutes"] and summary["timesteps"] < 50000
    assert summary["eval_episodes"] == 10 and (run / "policy.zip").exists()
    assert json.loads((run / "config.json").read_text())["max_minutes"] == 0.00001


@pytest.mark.slow
def test_preset_fields_can_be_set_per_run(tmp_path):
    run = tmp_path / "set"
    assert main(["train", "cartpole", "--labels", "6", "--steps", "1024", "--run-dir", str(run), "--no-progress",
                 "--set", "clip_length=20", "--set", "reward_epochs=3"]) == 0
    assert json.loads((run / "config.json").read_text())["overrides"] == {"clip_length": 20, "reward_epochs": 3}
    with PreferenceStore(run / "store.sqlite") as store:
        assert {c.length for c in store.get_clips([c.left_id for c in store.comparisons()])} == {20}
    for bad, message in ((["--set", "no_such_field=1"], "not a preset field"),
                         (["--set", "reward_epochs=many"], "expected a value like"),
                         (["--set", "reward_epochs"], "is not FIELD=VALUE"),
                         (["--set", "labels_until=1.5"], "must be in (0, 1]")):
        result = _run(["train", "cartpole", *bad])
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_labels_until_asks_the_whole_budget_by_that_share_of_the_run(tmp_path):
    run = tmp_path / "until"
    assert main(["train", "cartpole", "--labels", "12", "--steps", "4096", "--run-dir", str(run), "--no-progress",
                 "--set", "labels_until=0.5", "--set", "reward_epochs=2"]) == 0
    rows = [(int(r["timesteps"]), int(r["labels"])) for r in csv.DictReader((run / "metrics.csv").open())]
    full = [t for t, n in rows if n == 12]
    assert full and min(full) <= 2048 + 256  # by half the run, give or take a rollout (8 envs x 32 steps)
    assert rows[0][1] < 12  # the online labels still come during RL, not all at the start


@pytest.mark.slow
def test_your_own_env_trains_and_is_compared_in_a_process_that_never_imported_it(tmp_path):
    import gymnasium as gym

    from prefrl import TrainConfig, train

    (tmp_path / "prefrl_mine.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MinePole-v0', entry_point='gymnasium.envs.classic_control.cartpole:CartPoleEnv', "
        "max_episode_steps=200)\n")
    gym.register("MinePole-v1", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                 max_episode_steps=200)  # registered here only, as a user's own module would
    registered = tmp_path / "registered"
    train(TrainConfig("MinePole-v1", labels=6, steps=512, run_dir=str(registered), progress_bar=False,
                      overrides={"eval_episodes": 1}))
    gym.registry.pop("MinePole-v1")
    result = _run(["compare", str(registered), "--episodes", "1"])
    assert result.returncode == 0, result.stderr
    assert json.loads((registered / "compare" / "compare.json").read_text())["env"] == "MinePole-v1"

    colon = tmp_path / "colon"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for argv in (["train", "prefrl_mine:MinePole-v0", "--labels", "6", "--steps", "512", "--set", "eval_episodes=1",
                  "--no-progress", "--run-dir", str(colon)], ["compare", str(colon), "--episodes", "1"]):
        done = subprocess.run([sys.executable, "-m", "prefrl.cli", *argv], capture_output=True, text=True, env=env,
                              timeout=600)
        assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_labels_used_counts_the_final_fit_not_an_answer_during_evaluation(tmp_path, monkeypatch):
    """A person's answer that lands while the final policy is evaluated stays in the store (for a
    resume) but is not in the saved ensemble: labels_used counts the labels at the final fit, as
    rm_labels does, so the two agree."""
    from prefrl import training

    run, real_evaluate = tmp_path / "run", training.evaluate_policy

    def evaluate_while_a_label_lands(*args, **kwargs):
        with PreferenceStore(run / "store.sqlite") as late:
            left, right = late.clip_ids()[:2]
            late.record_labels([(late.add_queries([(left, right)], "human")[0], 1.0)], "ann")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate_policy", evaluate_while_a_label_lands)
    assert main(["train", "cartpole", "--labels", "12", "--steps", "2048", "--seed", "2",
                 "--run-dir", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    with PreferenceStore(run / "store.sqlite") as store:
        assert store.num_labels() == 13  # the late answer is kept
    assert summary["labels_used"] == summary["rm_labels"] == 12
