import numpy as np
import pytest

from prefrl.clips import Clip
from prefrl.schedule import LabelSchedule
from prefrl.teachers import OracleTeacher


def _clip(rewards):
    r = np.asarray(rewards, dtype=np.float32)
    return Clip(np.zeros((len(r), 2), np.float32), np.zeros(len(r)), r)


def test_oracle_prefers_higher_true_return_and_ties_equal():
    teacher = OracleTeacher()
    a, b, c = _clip([1, 1, 0]), _clip([0, 0, 1]), _clip([0, 1, 1])
    assert teacher([(a, b), (b, a), (a, c)]) == [1.0, 0.0, 0.5]


def test_schedule_starts_at_initial_ends_at_total_and_decays():
    s = LabelSchedule(total=200, initial=50, total_timesteps=100_000, t0=25_000)
    assert s.target(0) == 50
    assert s.target(100_000) == 200 and s.target(10**9) == 200
    marks = [s.target(t) for t in range(0, 100_001, 10_000)]
    assert marks == sorted(marks)
    gains = np.diff(marks)
    assert gains[0] > gains[-1]  # the rate decays: more labels early than late


def test_schedule_with_labels_until_asks_every_label_by_then_and_keeps_the_decay():
    s = LabelSchedule(total=200, initial=50, total_timesteps=100_000, t0=25_000, labels_until=75_000)
    assert s.target(0) == 50
    assert s.target(74_000) < 200 and s.target(75_000) == 200 and s.target(100_000) == 200
    full = LabelSchedule(total=200, initial=50, total_timesteps=100_000, t0=25_000)
    assert s.target(30_000) > full.target(30_000)  # the same labels, asked sooner
    gains = np.diff([s.target(t) for t in range(0, 75_001, 7_500)])
    assert gains[0] > gains[-1]
    with pytest.raises(ValueError, match="labels_until"):
        LabelSchedule(total=10, initial=2, total_timesteps=100, t0=1, labels_until=101)


def test_schedule_rejects_bad_budgets():
    with pytest.raises(ValueError, match="at least 1"):
        LabelSchedule(total=0, initial=0, total_timesteps=10, t0=1)
    with pytest.raises(ValueError, match="initial"):
        LabelSchedule(total=10, initial=11, total_timesteps=10, t0=1)
