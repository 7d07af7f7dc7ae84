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


def test_plackett_luce_equals_bradley_terry_for_two_items():
    from prefrl.losses import pairwise_ranking_loss, plackett_luce_loss

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(64, 2, generator=g, dtype=torch.float64)
    ranking = torch.stack([torch.randperm(2, generator=g) for _ in range(64)])
    best = scores.gather(1, ranking[:, :1]).squeeze(1)
    worst = scores.gather(1, ranking[:, 1:]).squeeze(1)
    bt = bradley_terry_loss(best, worst)
    assert abs(plackett_luce_loss(scores, ranking).item() - bt.item()) < 1e-6
    assert abs(pairwise_ranking_loss(scores, ranking).item() - bt.item()) < 1e-6


def test_plackett_luce_hand_computed_for_three_items():
    from prefrl.losses import pairwise_ranking_loss, plackett_luce_loss

    s = torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64)
    ranking = torch.tensor([[1, 0, 2]])  # item 1 best, then 0, then 2
    e = math.exp
    expected = -(math.log(e(2) / (e(2) + e(1) + e(0))) + math.log(e(1) / (e(1) + e(0))))
    assert abs(plackett_luce_loss(s, ranking).item() - expected) < 1e-12
    pairs = [(2.0, 1.0), (2.0, 0.0), (1.0, 0.0)]  # (better, worse) scores
    expected_pairwise = sum(math.log1p(e(-(a - b))) for a, b in pairs) / 3
    assert abs(pairwise_ranking_loss(s, ranking).item() - expected_pairwise) < 1e-12
    # a ranking that agrees with the scores costs less than its reverse
    assert plackett_luce_loss(s, torch.tensor([[1, 0, 2]])) < plackett_luce_loss(s, torch.tensor([[2, 0, 1]]))


def test_plackett_luce_noise_equals_bradley_terry_noise_for_two_items_and_is_hand_computed_for_three():
    from prefrl.losses import plackett_luce_loss

    g = torch.Generator().manual_seed(1)
    scores = 3 * torch.randn(32, 2, generator=g, dtype=torch.float64)
    bt = bradley_terry_loss(scores[:, 0], scores[:, 1], noise=0.1)
    assert abs(plackett_luce_loss(scores, noise=0.1).item() - bt.item()) < 1e-6
    # K = 3: P = 0.8·PL + 0.2/3! for the ranking already in order
    s = torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64)
    e = math.exp
    pl = e(1) / (e(1) + e(2) + e(0)) * e(2) / (e(2) + e(0))
    assert abs(plackett_luce_loss(s, noise=0.2).item() + math.log(0.8 * pl + 0.2 / 6)) < 1e-12
    with pytest.raises(ValueError, match="noise"):
        plackett_luce_loss(s, noise=1.0)
