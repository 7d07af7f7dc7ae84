"""Per-refit diagnostics: the checks against the true reward, and what a run logs at each refit."""

import csv

import numpy as np
import pytest

from prefrl.clips import Clip
from prefrl.diagnostics import check_reward, pair_accuracy


def test_pair_accuracy_counts_decided_pairs_only():
    true = np.array([1.0, 2.0, 2.0, 0.0])
    learned = np.array([0.1, 0.5, 0.9, 0.3])
    pairs = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [1, 0]])
    # decided: (0,1) right, (1,2) tie -> skipped, (2,3) right, (3,0) learned says 3 > 0, true says 0 > 3: wrong,
    # (1,0) right
    accuracy, decided = pair_accuracy(learned, true, pairs)
    assert decided == 4 and accuracy == pytest.approx(3 / 4)
    assert np.isnan(pair_accuracy(learned, np.ones(4), pairs)[0])


def _clips(n=30, length=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        obs = rng.normal(size=(length, 2)).astype(np.float32)
        out.append(Clip(obs, np.zeros(length, np.int64), obs[:, 0].copy()))
    return out


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_check_reward_against_the_truth_and_its_negation(sign):
    clips = _clips()
    pairs = np.array([(i, j) for i in range(30) for j in range(i + 1, 30)])
    steps = np.random.default_rng(1).normal(size=(8, 4, 2))

    def learned(obs, actions):
        return sign * obs[..., 0] * 3.0 + 7.0  # a positive (or negative) affine copy of the true reward

    check = check_reward(learned, clips, pairs, learned(steps, None), steps[..., 0])
    assert check.decided_pairs == len(pairs)
    assert check.pair_accuracy == (1.0 if sign > 0 else 0.0)
    assert check.clip_corr == pytest.approx(sign) and check.step_corr == pytest.approx(sign)
    assert check.reward_mean == pytest.approx(np.mean(learned(steps, None)))
    assert check.reward_std == pytest.approx(np.std(learned(steps, None)))


def test_constant_truth_gives_nan_not_a_number_that_looks_measured():
    clips = [Clip(np.zeros((5, 2), np.float32), np.zeros(5, np.int64), np.ones(5, np.float32)) for _ in range(4)]
    check = check_reward(lambda o, a: o[..., 0], clips, np.array([[0, 1], [2, 3]]), np.arange(6.0), np.ones(6))
    assert check.decided_pairs == 0 and np.isnan(check.pair_accuracy)
    assert np.isnan(check.clip_corr) and np.isnan(check.step_corr)


@pytest.mark.slow
def test_a_run_logs_the_checks_before_and_after_every_refit(tmp_path):
    from prefrl import TrainConfig, train

    run = tmp_path / "run"
    # Refits in place (no background delay), so each batch of labels is one refit on its own rollout.
    summary = train(TrainConfig("cartpole", labels=30, steps=4096, seed=0, run_dir=str(run), progress_bar=False,
                                overrides={"fit_delay": 0}))
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    refits = [r for r in rows if r["refit"] == "1"]
    # 22 online labels in batches of at most ceil(22 / 5) = 5: at least 5 refits, each row with both checks.
    assert len(refits) >= 5
    for r in refits:
        for key in ("pair_accuracy", "decided_pairs", "clip_corr", "reward_mean", "reward_std"):
            assert r[f"{key}_before"] != "" and r[f"{key}_after"] != ""
        assert 0.0 <= float(r["pair_accuracy_after"]) <= 1.0 and int(r["rm_epochs"]) >= 1
    # Labels grow only on refit rows, and every rollout has its true and learned reward per step.
    assert all(r["rollout_true_reward"] != "" and r["rollout_learned_reward"] != "" for r in rows)
    grew = [i for i in range(1, len(rows)) if rows[i]["labels"] != rows[i - 1]["labels"]]
    assert all(rows[i]["refit"] == "1" for i in grew)
    # the check scored two different ensembles: some refit moved the reward PPO sees
    assert any(r["reward_mean_before"] != r["reward_mean_after"] for r in refits) and summary["rm_labels"] == 30
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((run / "tb").iterdir())))
    events.Reload()
    assert {"diagnostics/pair_accuracy_before", "diagnostics/pair_accuracy_after",
            "diagnostics/reward_mean_after"} <= set(events.Tags()["scalars"])
