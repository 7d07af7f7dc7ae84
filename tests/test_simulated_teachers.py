"""B-Pref's simulated teachers: statistical checks of each noise model."""

import math

import numpy as np
import pytest

from prefrl.clips import Clip
from prefrl.teachers import OracleTeacher, SimulatedTeacher, make_teacher


def _clip(rewards):
    rewards = np.asarray(rewards, np.float32)
    return Clip(np.zeros((len(rewards), 1), np.float32), np.zeros(len(rewards), np.int64), rewards)


def _random_pairs(n, seed=0, length=5):
    rng = np.random.default_rng(seed)
    return [(_clip(rng.integers(0, 3, length)), _clip(rng.integers(0, 3, length))) for _ in range(n)]


def test_mistake_flip_rate_is_within_a_binomial_interval_of_epsilon():
    pairs = [(_clip([1, 1]), _clip([0, 0]))] * 20_000  # the oracle says left every time
    answers = np.array(SimulatedTeacher(mistake=0.1, seed=1)(pairs))
    flips = int((answers == 0.0).sum())
    n, eps = len(pairs), 0.1
    half_width = 3.29 * math.sqrt(eps * (1 - eps) / n)  # 99.9% normal interval
    assert abs(flips / n - eps) < half_width
    # and not B-Pref's slip: asking again does not square epsilon
    again = np.array(SimulatedTeacher(mistake=0.1, seed=2)(pairs))
    assert abs((again == 0.0).mean() - eps) < half_width


def test_large_beta_matches_the_oracle_and_beta_one_follows_the_logistic_law():
    pairs = _random_pairs(3000)
    oracle = OracleTeacher()(pairs)
    assert SimulatedTeacher(beta=1e4)(pairs) == oracle
    # returns differing by exactly 1: P(left) = σ(β·1)
    one_apart = [(_clip([1, 0]), _clip([0, 0]))] * 20_000
    rate = np.mean(SimulatedTeacher(beta=1.0, seed=3)(one_apart))
    p = 1 / (1 + math.exp(-1.0))
    assert abs(rate - p) < 3.29 * math.sqrt(p * (1 - p) / 20_000)


def test_myopic_teacher_weighs_the_latest_steps_most():
    early, late = _clip([3, 0, 0, 0]), _clip([0, 0, 0, 2])  # the plain return prefers early (3 > 2)
    assert OracleTeacher()([(early, late)]) == [1.0]
    assert SimulatedTeacher(gamma=0.5)([(early, late)]) == [0.0]  # 3·0.125 < 2·1
    np.testing.assert_allclose(SimulatedTeacher(gamma=0.9).scores(np.array([1.0, 1.0])), 1.9)


def test_skip_and_equal_thresholds_scale_with_the_batch():
    pairs = [(_clip([0]), _clip([1])), (_clip([9]), _clip([10])), (_clip([2]), _clip([8]))]
    # scores 0..10: skip below 0 + 0.2·10 = 2, tie within 0.15·10 = 1.5
    assert SimulatedTeacher(skip=0.2, equal=0.15)(pairs) == [None, 0.5, 0.0]
    scaled = [(_clip([10 * a.true_return]), _clip([10 * b.true_return])) for a, b in pairs]
    assert SimulatedTeacher(skip=0.2, equal=0.15)(scaled) == [None, 0.5, 0.0]  # the same up to scale


def test_named_teachers_and_bad_parameters():
    assert isinstance(make_teacher("oracle"), OracleTeacher)
    assert make_teacher("noisy").beta == 1.0 and make_teacher("myopic").gamma == 0.9
    assert make_teacher("mistake").mistake == 0.1 and make_teacher("skip").skip == 0.1
    assert make_teacher("equal").equal == 0.1 and make_teacher("noisy:beta=0.5").beta == 0.5
    assert make_teacher("oracle:mistake=0.2").mistake == 0.2
    with pytest.raises(ValueError, match="unknown teacher 'sloppy'"):
        make_teacher("sloppy")
    with pytest.raises(ValueError, match="unknown teacher parameter 'temp'"):
        make_teacher("noisy:temp=2")
    with pytest.raises(ValueError, match="mistake=1.5 is out of range"):
        make_teacher("oracle:mistake=1.5")


def test_rankings_follow_plackett_luce_and_reduce_to_the_pairwise_teachers():
    # the oracle sorts by return; equal returns come in both orders
    group = [_clip([0, 1]), _clip([2, 2]), _clip([1, 0]), _clip([0, 0])]
    orders = OracleTeacher(seed=0).rank([group] * 200)
    assert {tuple(o[:1]) for o in orders} == {(1,)} and all(o[3] == 3 for o in orders)
    assert {tuple(o[1:3]) for o in orders} == {(0, 2), (2, 0)}
    # β = 1 over returns 2, 1, 0: the first place goes to each clip with probability softmax(β·return)
    n = 20_000
    firsts = np.array([o[0] for o in SimulatedTeacher(beta=1.0, seed=4).rank([[_clip([0]), _clip([1]), _clip([2])]] * n)])
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    for k in range(3):
        assert abs((firsts == k).mean() - p[k]) < 3.29 * math.sqrt(p[k] * (1 - p[k]) / n)
    # K = 2: a mistake swaps the pair with probability ε; skip says "can't tell" below the threshold
    swapped = np.mean([o == [1, 0] for o in SimulatedTeacher(mistake=0.1, seed=5).rank([[_clip([1]), _clip([0])]] * n)])
    assert abs(swapped - 0.1) < 3.29 * math.sqrt(0.1 * 0.9 / n)
    skip = SimulatedTeacher(skip=0.5).rank([[_clip([0]), _clip([1])], [_clip([4]), _clip([10])]])
    assert skip[0] is None and skip[1] == [1, 0]
    # equal: returns within the threshold come in random order, the rest stay sorted
    equal = SimulatedTeacher(equal=0.2, seed=6).rank([[_clip([0]), _clip([10]), _clip([9.5])]] * 400)
    assert all(o[2] == 0 for o in equal) and {o[0] for o in equal} == {1, 2}
