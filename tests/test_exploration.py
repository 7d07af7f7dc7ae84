import numpy as np

from prefrl.exploration import knn_novelty


def test_isolated_states_are_the_most_novel():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(500, 3)).astype(np.float32)
    obs[:5] += 20.0  # a far-away cluster of five states
    novelty = knn_novelty(obs, k=5)
    assert novelty.shape == (500,)
    assert abs(novelty.mean()) < 1e-5 and abs(novelty.std() - 1) < 1e-2
    assert novelty[:5].min() > np.quantile(novelty[5:], 0.99)


def test_identical_states_give_no_bonus_and_subsampling_bounds_cost():
    assert (knn_novelty(np.ones((50, 2), np.float32)) == 0).all()
    big = np.random.default_rng(1).normal(size=(3000, 2)).astype(np.float32)
    assert knn_novelty(big, max_reference=256).shape == (3000,)
