import numpy as np
import pytest
import torch
from gymnasium import spaces

from prefrl.reward_model import RewardEnsemble, RewardModelConfig, step_features
from prefrl.reward_training import ComparisonBatch, EnsembleTrainer, is_validation


def test_step_features_one_hot_and_clip():
    obs_space = spaces.Box(-1, 1, (2,), np.float32)
    x = step_features(np.zeros((3, 2)), np.array([0, 2, 1]), obs_space, spaces.Discrete(3))
    np.testing.assert_array_equal(x[:, 2:], np.eye(3)[[0, 2, 1]])
    y = step_features(np.zeros((2, 2)), np.array([[5.0], [-0.5]]), obs_space, spaces.Box(-2, 2, (1,)))
    np.testing.assert_array_equal(y[:, 2], [2.0, -0.5])
    z = step_features(np.ones((2, 2)), np.array([[5.0], [-0.5]]), obs_space, spaces.Box(-2, 2, (1,)), use_action=False)
    np.testing.assert_array_equal(z, np.ones((2, 2)))


def test_validation_split_is_about_one_over_e_and_stable():
    ids = np.arange(1, 20_001)
    frac = is_validation(ids).mean()
    assert abs(frac - 1 / np.e) < 0.01
    np.testing.assert_array_equal(is_validation(ids[:50]), is_validation(ids)[:50])


def _known_reward_batch(n, length=5, seed=0):
    """Clips of 1-d observations whose true reward is the observation itself."""
    g = torch.Generator().manual_seed(seed)
    left, right = torch.randn(n, length, 2, generator=g), torch.randn(n, length, 2, generator=g)
    pref = (left[..., 0].sum(1) > right[..., 0].sum(1)).float()
    return ComparisonBatch(left, right, pref)


def test_ensemble_learns_a_known_reward_and_normalizes_members():
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=2, n_members=3, hidden=16, reward_std=0.05))
    trainer = EnsembleTrainer(model, epochs=30, seed=0)
    stats = trainer.train(_known_reward_batch(300), _known_reward_batch(150, seed=1))
    assert stats.val_accuracy > 0.9
    assert stats.n_train == 300 and stats.n_val == 150
    steps = torch.cat([_known_reward_batch(300).left.reshape(-1, 2)])
    with torch.no_grad():
        members = model.member_rewards(steps)
        learned = model(steps)
    # Each member normalized (close to, not exactly, the data it was normalized on), then averaged.
    assert members.mean(1).abs().max() < 0.2 and (members.std(1) - 1).abs().max() < 0.2
    assert learned.std().item() == pytest.approx(0.05, rel=0.2)
    assert np.corrcoef(learned.numpy(), steps[:, 0].numpy())[0, 1] > 0.9


def test_members_differ_because_each_sees_its_own_bootstrap():
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=2, n_members=3, hidden=8))
    EnsembleTrainer(model, epochs=3, seed=0).train(_known_reward_batch(60), _known_reward_batch(20, seed=1))
    w = model.layers[0].weight
    assert not torch.allclose(w[0], w[1]) and not torch.allclose(w[1], w[2])


def test_adaptive_l2_grows_when_validation_loss_runs_away():
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=2, n_members=2, hidden=64))
    trainer = EnsembleTrainer(model, epochs=40, lr=1e-2, seed=0, l2_init=1e-4)
    train = _known_reward_batch(20)
    noise = _known_reward_batch(100, seed=2)
    noise = noise._replace(preference=1 - noise.preference[torch.randperm(100)])  # unlearnable validation
    trainer.train(train, noise)
    assert (trainer.l2 > 1e-4).all()


def test_save_and_load_round_trip(tmp_path):
    model = RewardEnsemble(RewardModelConfig(n_features=3))
    model.save(tmp_path)
    back = RewardEnsemble.load(tmp_path)
    x = torch.randn(7, 3)
    torch.testing.assert_close(model(x), back(x))
