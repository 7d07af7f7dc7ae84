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
    # evaluating the trained ensemble on the validation labels again gives what training reported
    assert trainer.evaluate(_known_reward_batch(150, seed=1)) == pytest.approx((stats.val_loss, stats.val_accuracy))
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
    with torch.no_grad():  # every member starts as a copy of member 0: only their data can set them apart
        for p in model.parameters():
            p.copy_(p[:1].clone().expand_as(p))
    trainer = EnsembleTrainer(model, epochs=3, seed=0)
    seen, real_step = [], trainer.step

    def step(batch, idx):  # idx (M, b): the comparisons each member takes this gradient step
        seen.append(idx.clone())
        return real_step(batch, idx)

    trainer.step = step
    trainer.train(_known_reward_batch(60), _known_reward_batch(20, seed=1))
    # Each member's first epoch (one batch of 64) is a resample of the 60 comparisons with replacement, its own.
    assert trainer.batch_size >= 60 and len(seen) == 3
    counts = [torch.bincount(row, minlength=60) for row in seen[0]]
    assert all(c.sum() == 60 and c.max() > 1 for c in counts)
    assert not torch.equal(counts[0], counts[1]) and not torch.equal(counts[1], counts[2])
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


def _frame_batch(n, length=3, seed=0):
    """Clips of 2×44×44 noise frames whose true reward is the brightness of a 10×10 patch."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 60, (2, n, length, 2, 44, 44), generator=g, dtype=torch.uint8)
    level = torch.randint(0, 190, (2, n, length), generator=g)
    frames[..., 10:20, 10:20] += level[..., None, None, None].to(torch.uint8)
    returns = level.sum(-1)
    return ComparisonBatch(frames[0], frames[1], (returns[0] > returns[1]).float())


def test_cnn_ensemble_has_the_papers_shape_and_independent_members():
    config = RewardModelConfig(n_features=2 * 44 * 44, use_action=False, arch="cnn", obs_shape=(2, 44, 44))
    model = RewardEnsemble(config).eval()
    convs = [m for m in model.cnn.convs if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [7, 5, 3, 3] and [c.stride[0] for c in convs] == [3, 2, 1, 1]
    assert all(c.out_channels == 3 * 16 and c.groups == 3 for c in convs)
    x = torch.randint(0, 255, (3, 5, 2, 44, 44), dtype=torch.uint8)
    y = x.clone()
    y[1] = 0  # change only member 1's input
    with torch.no_grad():
        a, b = model.raw(x), model.raw(y)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[2], b[2])
    assert not torch.allclose(a[1], b[1])
    with pytest.raises(ValueError, match="no action"):
        RewardModelConfig(n_features=4, arch="cnn", obs_shape=(2, 44, 44))


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_the_cpus_member_by_member_convolutions_are_the_grouped_ones(dropout):
    """On a CPU the members' convolutions run one by one on slices of the grouped weights: the
    outputs, the gradients and the batch-norm running statistics must be the grouped layers' own, in
    training and (batch norm folded into the convolutions) in evaluation, for shared and per-member
    inputs."""
    import copy

    config = RewardModelConfig(n_features=2 * 44 * 44, use_action=False, arch="cnn", obs_shape=(2, 44, 44),
                               dropout=dropout)
    torch.manual_seed(0)
    model = RewardEnsemble(config)
    with torch.no_grad():  # batch norm away from its initial identity, so that folding it is tested
        for norm in (m for m in model.cnn.convs if isinstance(m, torch.nn.BatchNorm2d)):
            norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-0.2, 0.2)
            norm.running_mean.uniform_(-0.5, 0.5), norm.running_var.uniform_(0.5, 2.0)
    twin = copy.deepcopy(model)
    per_member = torch.randint(0, 255, (3, 6, 2, 44, 44), dtype=torch.uint8)
    shared = per_member[0]
    for x in (per_member, shared):
        model.train(), twin.train()
        torch.manual_seed(1)
        a = model.cnn._members_one_by_one(x.float() / 255.0)
        torch.manual_seed(1)
        b = twin.cnn._grouped(x.float() / 255.0)
        if dropout == 0.0:  # the dropout masks are drawn in another order: compare without them
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
            (a ** 2).sum().backward(), (b ** 2).sum().backward()
            for (name, p), q in zip(model.named_parameters(), twin.parameters()):
                if p.grad is not None or q.grad is not None:
                    torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4, msg=name)
        else:  # dropout is applied in training: the output is not the one out of training
            with torch.no_grad():
                assert not torch.allclose(a, model.eval().cnn._members_one_by_one(x.float() / 255.0))
        # Past the first dropout the running statistics depend on the masks drawn.
        for (name, buf), twin_buf in zip(model.named_buffers(), twin.buffers()):
            if dropout == 0.0 or name.startswith("cnn.convs.1."):
                torch.testing.assert_close(buf, twin_buf, msg=name)
        twin.load_state_dict(model.state_dict())
        model.eval(), twin.eval()
        with torch.no_grad():
            torch.testing.assert_close(model.cnn._members_one_by_one(x.float() / 255.0),
                                       twin.cnn._grouped(x.float() / 255.0), rtol=1e-5, atol=1e-5)
    assert model.cnn(shared).shape == (3, 6, config.hidden)


@pytest.mark.slow
def test_cnn_ensemble_learns_a_known_frame_reward(tmp_path):
    torch.manual_seed(0)
    config = RewardModelConfig(n_features=2 * 44 * 44, use_action=False, arch="cnn", obs_shape=(2, 44, 44),
                               reward_std=0.05)
    model = RewardEnsemble(config)
    stats = EnsembleTrainer(model, epochs=25, lr=3e-3, batch_size=32, seed=0).train(_frame_batch(160), _frame_batch(80, seed=1))
    assert stats.val_accuracy > 0.8
    model.save(tmp_path)
    back = RewardEnsemble.load(tmp_path).eval()
    x = _frame_batch(4).left.reshape(-1, 2, 44, 44)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), back(x))


def test_cheap_dropout_keeps_half_scales_by_two_and_masks_the_gradient():
    from prefrl.reward_model import _Dropout
    torch.manual_seed(0)
    drop = _Dropout(0.5).train()
    x = torch.ones(4, 16, 33, 33, requires_grad=True)  # an odd size: the mask is cut from 64-bit words
    y = drop(x)
    kept = y != 0
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert abs(kept.float().mean().item() - 0.5) < 0.01
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() * 2.0)
    assert torch.equal(drop.eval()(x), x)


def test_indexed_comparisons_train_exactly_like_materialized_ones():
    frames = _frame_batch(48)
    clips = torch.cat([frames.left, frames.right])
    indexed = ComparisonBatch(torch.arange(48), torch.arange(48, 96), frames.preference, clips)
    stats = []
    for batch in (frames, indexed):
        torch.manual_seed(0)
        config = RewardModelConfig(n_features=2 * 44 * 44, use_action=False, arch="cnn", obs_shape=(2, 44, 44))
        model = RewardEnsemble(config)
        trainer = EnsembleTrainer(model, epochs=2, batch_size=8, stats_sample=50, seed=0)
        stats.append((trainer.train(batch.subset(torch.arange(32)), batch.subset(torch.arange(32, 48))),
                      model.out_mean.clone()))
    assert stats[0][0] == stats[1][0]
    torch.testing.assert_close(stats[0][1], stats[1][1])


def test_pessimistic_reward_is_the_member_mean_less_k_stds():
    model = RewardEnsemble(RewardModelConfig(n_features=2, n_members=3, reward_std=0.5))
    members = torch.tensor([[1.0, 0.0], [1.0, -3.0], [1.0, 3.0]])  # agree on step 0, disagree on step 1
    model.raw = lambda x: members * 2.0 + 1.0  # normalized by the output stats to the members above
    model.out_mean.fill_(1.0)
    model.out_std.fill_(2.0)
    x = torch.zeros(2, 2)
    torch.testing.assert_close(model(x), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(model(x, pessimism=1.0), torch.tensor([0.5, -1.5]))  # std of (0, -3, 3) is 3


def _known_reward_rankings(n, k=3, length=5, seed=0):
    """Rankings of k clips (best first) whose true reward is the first observation feature."""
    from prefrl.reward_training import RankingBatch

    g = torch.Generator().manual_seed(seed)
    clips = torch.randn(n * k, length, 2, generator=g)
    order = torch.argsort(clips[..., 0].sum(1).reshape(n, k), dim=1, descending=True)
    return RankingBatch(torch.arange(n * k).reshape(n, k).gather(1, order), clips)


def test_ensemble_learns_a_known_reward_from_plackett_luce_rankings():
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=2, n_members=3, hidden=16))
    trainer = EnsembleTrainer(model, epochs=30, seed=0)
    train, val = _known_reward_rankings(200), _known_reward_rankings(100, seed=1)
    # the trainer's accuracy on rankings counts the ordered pairs within them: an untrained model is near 1/2
    assert abs(trainer._accuracy(val, trainer._member_returns(val)) - 0.5) < 0.15
    stats = trainer.train(train, val)
    assert stats.val_accuracy > 0.9 and stats.n_train == 200 and stats.n_val == 100
    # and its val loss is the Plackett–Luce loss with the trainer's noise, member by member
    from prefrl.losses import plackett_luce_loss

    returns = trainer._member_returns(val)
    expected = np.mean([plackett_luce_loss(r, noise=0.1).item() for r in returns])
    assert stats.val_loss == pytest.approx(expected, rel=1e-5)


def test_a_fit_stops_once_the_target_accuracy_is_reached_and_not_before():
    torch.manual_seed(0)
    train, val = _known_reward_batch(300), _known_reward_batch(150, seed=1)
    model = RewardEnsemble(RewardModelConfig(n_features=2, n_members=3, hidden=16))
    stats = EnsembleTrainer(model, epochs=200, target_accuracy=0.95, seed=0).train(train, val)
    assert stats.epochs < 200 and stats.train_accuracy >= 0.95
    # One epoch fewer was not enough: rerun from the same start with that cap and no target.
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=2, n_members=3, hidden=16))
    if stats.epochs > 1:
        short = EnsembleTrainer(model, epochs=stats.epochs - 1, seed=0).train(train, val)
        assert short.epochs == stats.epochs - 1 and short.train_accuracy < 0.95
    with pytest.raises(ValueError, match="target_accuracy"):
        EnsembleTrainer(model, target_accuracy=1.5)


def test_member_agreement_counts_each_members_own_comparisons():
    batch = ComparisonBatch(torch.zeros(4), torch.zeros(4), torch.tensor([1.0, 0.0, 0.5, 1.0]))
    idx = torch.tensor([[0, 1, 2], [3, 3, 2]])  # member 0: comparisons 0, 1, 2; member 1: 3, 3, 2
    returns = torch.tensor([[[2.0, 1.0], [2.0, 1.0], [0.0, 9.0]],   # right, wrong, tie (not counted)
                            [[0.0, 1.0], [3.0, 1.0], [1.0, 1.0]]])  # wrong, right, tie
    right, total = batch.member_agreement(returns, idx)
    assert right.tolist() == [1.0, 1.0] and total.tolist() == [2.0, 2.0]


def test_reinitialize_is_repeatable_and_leaves_torchs_global_stream_alone():
    model = RewardEnsemble(RewardModelConfig(n_features=3, hidden=8))
    state = torch.get_rng_state()
    model.reinitialize(7)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    model.reinitialize(7)
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), state)  # a refit in a background thread changes no PPO sample
    model.reinitialize(8)
    assert not torch.equal(first["layers.0.weight"], model.state_dict()["layers.0.weight"])


def test_a_cold_refit_starts_from_fresh_weights_l2_and_input_statistics():
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=2, n_members=3, hidden=16))
    trainer = EnsembleTrainer(model, epochs=30, warm_start=False, seed=0)
    trainer.train(_known_reward_batch(100), _known_reward_batch(50, seed=1))
    trainer.l2 = torch.full_like(trainer.l2, 10.0)  # whatever the last fit left
    shifted = _known_reward_batch(100, seed=2)
    shifted = ComparisonBatch(shifted.left + 5.0, shifted.right + 5.0, shifted.preference)
    stats = trainer.train(shifted, _known_reward_batch(0, seed=3))
    assert stats.l2 == pytest.approx([1e-3] * 3)  # the initial strength (no validation labels to adapt it), not 10
    np.testing.assert_allclose(model.feature_mean.numpy(), torch.cat([shifted.left, shifted.right]).reshape(-1, 2)
                               .mean(0).numpy(), atol=1e-4)
    assert stats.train_accuracy > 0.8  # it learned the shifted data from scratch


def test_shift_augmentation_moves_each_clip_as_a_whole_and_only_in_gradient_steps(monkeypatch):
    config = RewardModelConfig(n_features=2 * 44 * 44, use_action=False, arch="cnn", obs_shape=(2, 44, 44))
    trainer = EnsembleTrainer(RewardEnsemble(config), batch_size=4, seed=0, augment_shift=3)
    x = torch.zeros(3, 4, 2, 5, 2, 44, 44, dtype=torch.uint8)  # (M, b, K, L, C, H, W)
    x[..., 20, 20] = 255
    moved = trainer._shifted(x)
    assert moved.shape == x.shape and moved.dtype == x.dtype
    where = moved.reshape(-1, 5 * 2, 44, 44).nonzero()  # (clip, frame, row, col) of each bright pixel
    offsets = set()
    for n in range(3 * 4 * 2):
        at = where[where[:, 0] == n][:, 1:]
        assert len(at) == 10 and (at[:, 1:] == at[0, 1:]).all()  # one pixel a frame, the same place in all
        offsets.add(tuple((20 - at[0, 1:]).tolist()))
    assert len(offsets) > 3  # clips move differently
    assert all(abs(dy) <= 3 and abs(dx) <= 3 for dy, dx in offsets)

    seen = []
    monkeypatch.setattr(trainer, "_returns", lambda clips: seen.append(clips) or torch.zeros(3, *clips.shape[-6:-4], requires_grad=True))
    batch = _frame_batch(8)
    trainer._member_returns(batch)  # scoring (validation, PPO's reward): frames as they are
    assert torch.equal(torch.cat(seen), batch.group(slice(0, 8)))
    trainer.step(batch, torch.arange(4).expand(3, -1))  # a gradient step: shifted
    assert seen[-1].shape == batch.group(torch.arange(4).expand(3, -1)).shape
    assert not torch.equal(seen[-1], batch.group(torch.arange(4).expand(3, -1)))


def test_training_offers_to_wait_before_each_step_and_each_chunk_of_its_clip_passes():
    """An asynchronous fitter waits at these calls while the agent updates: none of the CNN's passes
    (gradient steps, validation, the output scale) may run long between two of them."""
    batch = _frame_batch(48)
    torch.manual_seed(0)
    model = RewardEnsemble(RewardModelConfig(n_features=2 * 44 * 44, use_action=False, arch="cnn", obs_shape=(2, 44, 44)))
    trainer = EnsembleTrainer(model, epochs=2, batch_size=8, seed=0)
    calls = []
    trainer.train(batch.subset(torch.arange(32)), batch.subset(torch.arange(32, 48)),
                  between_steps=lambda: calls.append(1))
    steps, val_chunks, stats_chunks = 32 // 8, 16 // 8, -(-48 * 2 * 3 // 256)  # 288 steps scaled on, 256 a chunk
    assert len(calls) == 2 * (steps + 1 + val_chunks) + 1 + stats_chunks
