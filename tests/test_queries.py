import dataclasses

import numpy as np
import torch

from prefrl.clips import Clip
from prefrl.queries import select_pairs


def _clips(n, length=4):
    return [Clip(np.full((length, 1), i, np.float32), np.zeros(length), np.full(length, i, np.float32))
            for i in range(n)]


def test_random_pairs_are_distinct_and_skip_identical_clips():
    clips = _clips(6) + [Clip(np.zeros((4, 1), np.float32), np.zeros(4), np.zeros(4, np.float32))]
    pairs = select_pairs(clips, 15, "random", np.random.default_rng(0))
    assert len(pairs) == len({tuple(sorted(p)) for p in pairs})
    # clip 6 is a copy of clip 0: that pair tells a teacher nothing and is never asked
    assert not any(sorted(p) == [0, 6] for p in pairs)
    assert all(i != j for i, j in pairs)


def test_disagreement_picks_the_pairs_members_disagree_on():
    clips = _clips(10)

    def member_returns(cs):
        # Three members agree on every clip except clip 0 (their returns for it spread widely).
        r = torch.tensor([float(c.obs[0, 0]) for c in cs]).repeat(3, 1)
        for k, c in enumerate(cs):
            if c.obs[0, 0] == 0:
                r[:, k] = torch.tensor([-20.0, 0.0, 20.0])
        return r

    pairs = select_pairs(clips, 3, "disagreement", np.random.default_rng(1), member_returns, oversample=10)
    assert len(pairs) == 3
    assert all(0 in pair for pair in pairs)


def test_entropy_picks_the_pairs_the_mean_prediction_is_least_sure_of():
    clips = _clips(10)

    def member_returns(cs):
        # Members agree; clips 3 and 4 have the same return, so P(3 > 4) = 0.5: most uncertain.
        r = torch.tensor([float(c.obs[0, 0]) * 5 for c in cs])
        r[[k for k, c in enumerate(cs) if c.obs[0, 0] == 4]] = 15.0
        return r.repeat(3, 1)

    pairs = select_pairs(clips, 1, "entropy", np.random.default_rng(0), member_returns, oversample=45)
    assert sorted(pairs[0]) == [3, 4]


def test_optimistic_picks_pairs_with_the_highest_upper_bound():
    clips = _clips(10)

    def member_returns(cs):
        # Clip 9 has the highest mean return; clip 2's members disagree wildly, so its bound is high too.
        r = torch.tensor([float(c.obs[0, 0]) for c in cs]).repeat(3, 1)
        for k, c in enumerate(cs):
            if c.obs[0, 0] == 2:
                r[:, k] = torch.tensor([-30.0, 2.0, 60.0])
        return r

    pairs = select_pairs(clips, 12, "optimistic", np.random.default_rng(0), member_returns, oversample=4)
    assert all(2 in p or 9 in p for p in pairs)


def test_the_querier_compares_kept_member_returns_while_their_ensemble_is_in_force():
    from prefrl.queries import Pairs, Querier
    from prefrl.store import PreferenceStore

    calls = []

    def member_returns(cs):  # the ensemble run again; members agree except on clip 0
        calls.append(len(cs))
        r = torch.tensor([float(c.obs[0, 0]) for c in cs]).repeat(3, 1)
        for k, c in enumerate(cs):
            if c.obs[0, 0] == 0:
                r[:, k] = torch.tensor([-20.0, 0.0, 20.0])
        return r

    def kept(clips, version):  # the same returns, kept from when each clip was played
        return [dataclasses.replace(c, member_returns=member_returns([c])[:, 0].numpy(), scored_by=version)
                for c in clips]

    with PreferenceStore(":memory:", env="x") as store:
        querier = Querier(Pairs(), store, "disagreement", member_returns, seed=0, source="oracle")
        pool = kept(_clips(10), version=5)
        calls.clear()
        queries = querier(pool, 3, scored_by=5)
        assert calls == [] and querier.reused == 10  # no pass of the ensemble
        assert all(0 in [int(c.obs[0, 0]) for c in q.clips] for q in queries)  # the same picks as a fresh pass
        # Half the pool from an older ensemble: the clips of this one are the candidates, still no pass.
        mixed = kept(_clips(10)[:5], version=4) + kept(_clips(10)[5:], version=5)
        calls.clear()
        queries = querier(mixed, 2, scored_by=5)
        assert calls == [] and all(int(c.obs[0, 0]) >= 5 for q in queries for c in q.clips)
        # Most of the pool stale: every clip is scored again by the ensemble.
        stale = kept(_clips(10)[:6], version=4) + kept(_clips(10)[6:], version=5)
        calls.clear()
        queries = querier(stale, 3, scored_by=5)
        assert calls and all(0 in [int(c.obs[0, 0]) for c in q.clips] for q in queries)
        # The run's summary counts the picks of each kind; a random pick is of neither.
        querier(stale, 1, strategy="random")
        assert querier.picks == {"kept_returns": 2, "scored_again": 1, "clips_scored_again": 10}
