import math

import pytest
import torch

from prefrl.losses import bradley_terry_loss, preference_probability


def test_bt_matches_hand_computation():
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])
    expected = -(math.log(1 / (1 + math.exp(-1.0))) + math.log(0.5)) / 2
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected, rel=1e-6)


def test_bt_noise_is_random_response():
    chosen, rejected = torch.tensor([3.0]), torch.tensor([0.0])
    p = 0.9 / (1 + math.exp(-3.0)) + 0.05
    assert preference_probability(chosen, rejected, noise=0.1).item() == pytest.approx(p, rel=1e-6)
    assert bradley_terry_loss(chosen, rejected, noise=0.1).item() == pytest.approx(-math.log(p), rel=1e-6)


def test_bt_soft_target_and_tie():
    chosen, rejected = torch.tensor([1.5]), torch.tensor([-0.5])
    p = 0.9 / (1 + math.exp(-2.0)) + 0.05
    tie = bradley_terry_loss(chosen, rejected, noise=0.1, target=torch.tensor([0.5]))
    assert tie.item() == pytest.approx(-(0.5 * math.log(p) + 0.5 * math.log(1 - p)), rel=1e-6)
    # A tie is best fitted by equal rewards.
    assert bradley_terry_loss(torch.zeros(1), torch.zeros(1), noise=0.1, target=torch.tensor([0.5])) < tie


def test_bt_noise_bounds_the_loss_of_confident_mistakes():
    big = torch.tensor([1000.0])
    loss = bradley_terry_loss(torch.zeros(1), big, noise=0.1)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(-math.log(0.05), rel=1e-4)


def test_bt_rejects_bad_noise():
    with pytest.raises(ValueError, match="noise"):
        bradley_terry_loss(torch.zeros(1), torch.zeros(1), noise=1.0)
