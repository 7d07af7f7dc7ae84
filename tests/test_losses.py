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


# --- DPO, IPO, KTO ----------------------------------------------------------------------------------


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_dpo_is_bradley_terry_on_implicit_rewards():
    from prefrl.losses import dpo_loss

    g = torch.Generator().manual_seed(2)
    pc, pr, rc, rr = (-5 * torch.rand(16, generator=g, dtype=torch.float64) for _ in range(4))
    beta = 0.3
    bt = bradley_terry_loss(beta * (pc - rc), beta * (pr - rr))
    assert abs(dpo_loss(pc, pr, rc, rr, beta=beta).item() - bt.item()) < 1e-6


def test_dpo_hand_computed_and_log2_at_the_reference():
    from prefrl.losses import dpo_loss

    pc, pr, rc, rr = torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.2])
    # β·((πc − rc) − (πr − rr)) = 0.5·(0.5 + 0.8) = 0.65
    assert dpo_loss(pc, pr, rc, rr, beta=0.5).item() == pytest.approx(-math.log(sigmoid(0.65)), rel=1e-6)
    logps = torch.tensor([-3.0, -7.0])
    assert dpo_loss(logps, logps.flip(0), logps, logps.flip(0), beta=2.0).item() == pytest.approx(math.log(2), rel=1e-6)


def test_ipo_hand_computed():
    from prefrl.losses import ipo_loss

    pc, pr = torch.tensor([-1.0, 0.0]), torch.tensor([-2.0, 0.0])
    rc, rr = torch.tensor([-1.5, 0.0]), torch.tensor([-1.2, 0.0])
    # gaps 1.3 and 0; target 1/(2·0.5) = 1
    expected = ((1.3 - 1.0) ** 2 + (0.0 - 1.0) ** 2) / 2
    assert ipo_loss(pc, pr, rc, rr, tau=0.5).item() == pytest.approx(expected, rel=1e-6)
    # zero at the target gap 1/(2τ) = 2.5
    assert ipo_loss(torch.tensor([2.5]), torch.zeros(1), torch.zeros(1), torch.zeros(1), tau=0.2).item() < 1e-12
    with pytest.raises(ValueError, match="tau"):
        ipo_loss(pc, pr, rc, rr, tau=0.0)


def test_kto_hand_computed_for_one_desirable_and_one_undesirable_item():
    from prefrl.losses import kto_loss

    policy, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])  # ρ = 0.5, −1.0
    desirable = torch.tensor([True, False])
    desirable_term = 1 - sigmoid(0.5 * (0.5 - 0.2))
    undesirable_term = 1.5 * (1 - sigmoid(0.5 * (0.2 - (-1.0))))
    expected = (desirable_term + undesirable_term) / 2
    loss = kto_loss(policy, ref, desirable, 0.2, beta=0.5, lambda_d=1.0, lambda_u=1.5)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # a tensor kl_ref gives the same
    as_tensor = kto_loss(policy, ref, desirable, torch.tensor(0.2), beta=0.5, lambda_u=1.5)
    assert as_tensor.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="bool"):
        kto_loss(policy, ref, torch.tensor([1, 0]), 0.2)


def test_kto_clamps_a_negative_kl_ref_at_zero():
    from prefrl.losses import kto_loss

    policy, ref, desirable = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0]), torch.tensor([True, False])
    expected = ((1 - sigmoid(0.5 * 0.5)) + (1 - sigmoid(0.5 * 1.0))) / 2  # z0 = 0, not −0.3
    assert kto_loss(policy, ref, desirable, -0.3, beta=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_kto_sends_no_gradient_into_kl_ref():
    from prefrl.losses import kto_loss

    policy = torch.tensor([-1.0, -2.0], requires_grad=True)
    kl_ref = torch.tensor(0.2, requires_grad=True)
    kto_loss(policy, torch.tensor([-1.5, -1.0]), torch.tensor([True, False]), kl_ref, beta=0.5).backward()
    assert kl_ref.grad is None
    assert policy.grad is not None and bool((policy.grad != 0).all())


# --- PPO pieces for the language-model path ---------------------------------------------------------


def test_ppo_policy_loss_takes_the_pessimistic_branch():
    from prefrl.losses import ppo_policy_loss

    # ε = 0.2: ratios e^0.5 ≈ 1.65 (above 1 + ε), e^−0.5 ≈ 0.61 (below 1 − ε), e^0.1 ≈ 1.11 (inside)
    log_ratio = [0.5, -0.5, 0.5, -0.5, 0.1]
    adv = [1.0, 1.0, -1.0, -1.0, 2.0]
    # per token max(−A·r, −A·clip(r)), and whether the clipped branch (no gradient) is taken
    cases = [
        (-1.2, True),  # A > 0, r > 1 + ε: the gain is capped
        (-math.exp(-0.5), False),  # A > 0, r < 1 − ε: the loss is not capped
        (math.exp(0.5), False),  # A < 0, r > 1 + ε: not capped
        (0.8, True),  # A < 0, r < 1 − ε: capped
        (-2 * math.exp(0.1), False),  # inside the range
    ]
    logprobs = torch.tensor(log_ratio, dtype=torch.float64, requires_grad=True)
    old = torch.zeros(5, dtype=torch.float64)
    loss = ppo_policy_loss(logprobs, old, torch.tensor(adv, dtype=torch.float64), clip_range=0.2)
    assert loss.item() == pytest.approx(sum(v for v, _ in cases) / 5, rel=1e-9)
    loss.backward()
    for grad, a, lr, (_, clipped) in zip(logprobs.grad.tolist(), adv, log_ratio, cases):
        # d(−A·r)/d logπ = −A·r, divided by the 5 tokens of the mean
        assert grad == pytest.approx(0.0 if clipped else -a * math.exp(lr) / 5, abs=1e-12)


def test_masked_mean_and_ppo_policy_loss_ignore_masked_tokens():
    from prefrl.losses import masked_mean, ppo_policy_loss

    x = torch.tensor([[1.0, 2.0, 1e6], [4.0, 1e6, 1e6]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx((1 + 2 + 4) / 3, rel=1e-6)
    assert masked_mean(x[:, :1]).item() == pytest.approx(2.5, rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        masked_mean(x, mask[:, :2])
    # a masked token with a huge ratio and advantage changes nothing
    logprobs, old = torch.tensor([[0.1, 5.0]]), torch.zeros(1, 2)
    adv = torch.tensor([[2.0, -100.0]])
    loss = ppo_policy_loss(logprobs, old, adv, mask=torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(-2 * math.exp(0.1), rel=1e-6)


def test_ppo_value_loss_hand_computed_with_and_without_clipping():
    from prefrl.losses import ppo_value_loss

    values, old = torch.tensor([1.5, 1.5]), torch.tensor([1.0, 1.0])
    returns = torch.tensor([2.0, 0.0])
    # no clip: 0.5·mean((1.5 − 2)², (1.5 − 0)²)
    assert ppo_value_loss(values, old, returns).item() == pytest.approx(0.5 * (0.25 + 2.25) / 2, rel=1e-6)
    # clip 0.2: v_clip = 1.2; item 1: max(0.25, 0.64) = 0.64 (clipped wins), item 2: max(2.25, 1.44) = 2.25
    clipped = ppo_value_loss(values, old, returns, clip_range=0.2)
    assert clipped.item() == pytest.approx(0.5 * (0.64 + 2.25) / 2, rel=1e-6)
    # masked: only item 1 counts
    mask = torch.tensor([1.0, 0.0])
    assert ppo_value_loss(values, old, returns, clip_range=0.2, mask=mask).item() == pytest.approx(0.32, rel=1e-6)
    with pytest.raises(ValueError, match="clip_range"):
        ppo_value_loss(values, old, returns, clip_range=0.0)


def test_kl_penalty_k1_k3_values_and_unreduced_shape():
    from prefrl.losses import kl_penalty

    logp, ref = torch.tensor([[-1.0, -2.0, -0.5]]), torch.tensor([[-1.5, -1.0, -0.5]])
    k1 = kl_penalty(logp, ref, "k1")
    assert k1.shape == logp.shape
    assert k1.tolist()[0] == pytest.approx([0.5, -1.0, 0.0], abs=1e-6)
    k3 = kl_penalty(logp, ref, "k3")
    assert k3.shape == logp.shape
    # (exp(ref − logp) − 1) − (ref − logp)
    expected = [(math.exp(-0.5) - 1) + 0.5, (math.exp(1.0) - 1) - 1.0, 0.0]
    assert k3.tolist()[0] == pytest.approx(expected, abs=1e-6)
    assert bool((k3 >= 0).all()) and k3[0, 2].item() == 0.0
    assert kl_penalty(logp, ref, "abs").tolist()[0] == pytest.approx([0.5, 1.0, 0.0], abs=1e-6)
    assert kl_penalty(logp, ref, "mse").tolist()[0] == pytest.approx([0.125, 0.5, 0.0], abs=1e-6)
    with pytest.raises(ValueError, match="'k2'.*'k1'.*'k3'"):
        kl_penalty(logp, ref, "k2")


def test_kl_penalty_k1_and_k3_estimate_the_true_kl_from_samples():
    from prefrl.losses import kl_penalty

    p = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    exact = 0.6 * math.log(0.6 / 0.2) + 0.3 * math.log(1.0) + 0.1 * math.log(0.1 / 0.5)
    g = torch.Generator().manual_seed(3)
    tokens = torch.multinomial(p, 20000, replacement=True, generator=g)
    for estimator in ("k1", "k3"):
        est = kl_penalty(p.log()[tokens], q.log()[tokens], estimator)
        stderr = est.std().item() / math.sqrt(len(est))
        assert abs(est.mean().item() - exact) < 3 * stderr, estimator


def test_ptx_loss_is_cross_entropy_and_ignores_masked_tokens():
    from prefrl.losses import ptx_loss

    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]]])  # (B=1, T=2, V=3)
    targets = torch.tensor([[1, 0]])
    e = math.exp
    nll = [math.log(e(1) + e(2) + e(0)) - 2.0, math.log(e(0.5) + e(-1) + e(3)) - 0.5]
    assert ptx_loss(logits, targets).item() == pytest.approx(sum(nll) / 2, rel=1e-6)
    assert ptx_loss(logits, targets, coef=0.5).item() == pytest.approx(
        0.5 * torch.nn.functional.cross_entropy(logits[0], targets[0]).item(), rel=1e-6
    )
    assert ptx_loss(logits, targets, mask=torch.tensor([[0, 1]])).item() == pytest.approx(nll[1], rel=1e-6)
    with pytest.raises(ValueError, match="targets"):
        ptx_loss(logits, targets[:, :1])
