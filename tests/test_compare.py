import json

import numpy as np
import pytest

from prefrl.compare import compare, correlations, episode_video, pair_accuracy, ranks


def test_pair_accuracy_counts_only_pairs_whose_true_values_differ():
    true = np.array([0.0, 0.0, 1.0, 2.0])
    assert pair_accuracy(np.array([7.0, 1.0, 6.0, 8.0]), true) == (0.8, 5)  # only (0, 2) is ordered wrongly
    assert pair_accuracy(true * 3 - 1, true) == (1.0, 5)  # any increasing map is perfect
    assert pair_accuracy(np.zeros(4), true) == (0.0, 5)  # a constant learned reward orders nothing
    assert pair_accuracy(np.arange(3.0), np.ones(3)) == (None, 0)


def test_bootstrap_intervals_hold_the_statistic_and_narrow_with_more_data():
    from prefrl.stats import bootstrap_ci

    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 800):
        t = rng.normal(size=n)
        l = t + rng.normal(size=n)
        low, high = bootstrap_ci(lambda a, b: correlations(a, b)[0], l, t)
        assert low < correlations(l, t)[0] < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    assert bootstrap_ci(lambda a, b: correlations(a, b)[0], rng.normal(size=20), np.ones(20)) is None


def test_ranks_average_ties_and_correlations_need_variation():
    np.testing.assert_array_equal(ranks(np.array([3.0, 1.0, 3.0, 2.0])), [2.5, 0.0, 2.5, 1.0])
    pearson, spearman = correlations(np.array([1.0, 2.0, 3.0, 10.0]), np.array([2.0, 4.0, 6.0, 8.0]))
    assert spearman == pytest.approx(1.0) and 0.8 < pearson < 1.0
    assert correlations(np.array([1.0, 2.0, 3.0]), np.ones(3)) == (None, None)


@pytest.mark.slow
def test_compare_a_tiny_run_writes_the_figures(tmp_path):
    from prefrl import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig("cartpole", labels=12, steps=2048, run_dir=str(run), progress_bar=False))
    result = compare(run, episodes=1, max_steps=300)
    saved = json.loads((run / "compare" / "compare.json").read_text())
    for key in ("pair_accuracy", "n_pairs", "pearson_step", "spearman_step", "pearson_clip", "spearman_clip",
                "pearson_episode", "spearman_episode", "n_clips"):
        assert key in saved
    assert saved["policies"][0] == "random" and saved["policies"][-1] == "final"
    assert set(saved["per_policy"]) == set(saved["policies"])
    assert sum(f["clips"] for f in saved["per_policy"].values()) == saved["n_clips"]
    low, high = saved["ci95"]["pearson_clip"]
    assert low <= saved["pearson_clip"] <= high
    assert saved["epic_distance"] is None  # cartpole's score (with its fall penalty) is no function of (s, a, s')
    assert result["n_clips"] == result["n_episodes"] * (300 // 50)  # six 50-step clips from each 300-step episode
    for png in result["figures"]:
        assert (run / "compare" / png).read_bytes()[:4] == b"\x89PNG"
    report = (run / "compare" / "report.md").read_text()
    assert "Pair accuracy" in report and all(f"]({png})" in report for png in result["figures"])
    assert "By policy" in report and "95% bootstrap intervals" in report and "of 4 labels" in report
    import cv2

    video = episode_video(run, steps=40)  # the fixed-horizon cartpole runs 500 steps: all 40 are drawn
    assert video.suffix in (".webm", ".mp4") and video.exists()  # VP9 or H.264, what browsers play
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    ok, frame = capture.read()
    assert ok and frame.shape[0] >= 400 and frame[:52].mean() < frame[60:].mean()  # the dark caption band


def test_a_resumed_runs_curve_drops_the_rows_the_killed_run_logged_past_its_checkpoint():
    from prefrl.compare import _resumed

    rows = [{"timesteps": str(t)} for t in (100, 200, 300, 400, 500, 300, 400, 600)]  # resumed from 250
    assert [int(r["timesteps"]) for r in _resumed(rows)] == [100, 200, 300, 400, 600]
    assert _resumed(rows)[2] is rows[5]  # the resumed run's row, not the killed run's


def test_a_resumed_run_drops_the_metrics_rows_logged_past_its_checkpoint(tmp_path, monkeypatch):
    import csv
    from types import SimpleNamespace

    import prefrl.metrics
    from prefrl.metrics import MetricsLog

    # A scripted clock, read once per row: the first process logs at 100..400 s after it began at 0.
    clock = iter([100.0, 200.0, 300.0, 400.0, 1050.0])
    monkeypatch.setattr(prefrl.metrics.time, "time", lambda: next(clock))
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, 0.0, learned=False)
    for t in (100, 200, 300, 400):
        log.row(SimpleNamespace(num_timesteps=t, ep_info_buffer=[]))
    log.close()
    # killed at 400, resumed from its checkpoint at 200 by a process that began at 1000 and logs at 1050
    log = MetricsLog(path, 1000.0, append=True, learned=False, resumed_from=200)
    log.row(SimpleNamespace(num_timesteps=300, ep_info_buffer=[]))
    log.close()
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["timesteps"]) for r in rows] == [100, 200, 300]
    # the run's own time goes on from the last kept row (200) by the new process's 50, not from 0
    assert [float(r["wall_seconds"]) for r in rows] == [100.0, 200.0, 250.0]
