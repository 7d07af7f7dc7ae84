"""The preference loop's stages, each alone and then called in order by the callback, without PPO."""

import copy
import sys
import time

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.logger import configure

from prefrl.clips import Clip, ClipRecorder
from prefrl.diagnostics import RefitCheck
from prefrl.errors import StoreError, TrainingError
from prefrl.feedback import HumanFeedback, SyntheticFeedback
from prefrl.fitting import AsyncFitter, Fitter
from prefrl.labeled_data import LabeledData
from prefrl.learned_reward import LearnedRewardVecEnv
from prefrl.loop import PreferenceCallback
from prefrl.queries import Pairs, Querier, Rankings, query_kind
from prefrl.reward_fn import LearnedReward
from prefrl.reward_training import EnsembleTrainer, is_validation
from prefrl.schedule import LabelSchedule
from prefrl.store import PreferenceStore
from prefrl.teachers import OracleTeacher

OBS = spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = spaces.Discrete(2)


def _clip(rng, length=5):
    obs = rng.uniform(-1, 1, (length, 3)).astype(np.float32)
    return Clip(obs, rng.integers(0, 2, length), obs[:, 0].copy())


def _pool(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return [_clip(rng) for _ in range(n)]


def _reward(seed=0):
    torch.manual_seed(seed)
    return LearnedReward.build(OBS, ACT, hidden=8)


def _stages(store, rank_size=2, delay=0, human=False, batch=4, asynchronous=False, yield_to_agent=False,
            new_only=False):
    reward = _reward()
    kind = query_kind(rank_size)
    data = LabeledData(kind, reward.features, store, reward.device, OBS.shape, ACT.shape)
    feedback = (HumanFeedback(store, data, batch, poll=0.01) if human
                else SyntheticFeedback(OracleTeacher(), kind, store, data, batch))
    trainer = EnsembleTrainer(copy.deepcopy(reward.model) if delay or asynchronous else reward.model, epochs=3)
    fitter = (AsyncFitter(trainer, reward.model, data, yield_to_agent=yield_to_agent, new_only=new_only)
              if asynchronous else Fitter(trainer, reward.model, data, delay=delay, new_only=new_only))
    querier = Querier(kind, store, "disagreement", reward.member_returns, 0, feedback.source)
    return reward, querier, feedback, data, fitter


def test_the_reward_is_the_ensemble_on_the_step_features_in_one_place():
    reward = _reward()
    obs = np.random.default_rng(0).uniform(-1, 1, (4, 6, 3)).astype(np.float32)
    actions = np.ones((4, 6), np.int64)
    r = reward(obs, actions)
    assert r.shape == (4, 6) and r.dtype == np.float32
    np.testing.assert_allclose(reward(obs[1], actions[1]), r[1], rtol=1e-6)  # any leading shape
    reward.batch_size = 5  # scoring a few steps at a time changes no number
    np.testing.assert_allclose(reward(obs, actions), r, rtol=1e-6)
    assert reward.features(obs, actions).shape == (4, 6, 5)  # 3 observation values + one-hot action
    pessimist = LearnedReward(reward.model, OBS, ACT, pessimism=1.0)
    assert (pessimist(obs, actions) <= r + 1e-6).all() and not np.allclose(pessimist(obs, actions), r)
    with pytest.raises(ValueError, match="pessimism must be >= 0"):
        LearnedReward(reward.model, OBS, ACT, pessimism=-1)


@pytest.mark.parametrize("kind", [Pairs(), Rankings(3)], ids=["pairs", "rankings"])
def test_the_querier_stores_clips_once_and_queries_of_its_kind(kind):
    reward = _reward()
    with PreferenceStore(":memory:", env="x") as store:
        querier = Querier(kind, store, "random", reward.member_returns, seed=0, source="oracle")
        pool = _pool()
        queries = querier(pool, 6)
        assert len(queries) == 6 and querier.asked == 6
        assert all(len(q.clips) == kind.size and all(c.clip_id is not None for c in q.clips) for q in queries)
        stored = store.comparisons() if kind.size == 2 else store.rankings()
        assert [s.id for s in stored] == [q.id for q in queries]
        clips_used = {c.clip_id for q in queries for c in q.clips}
        assert store.num_clips() == len(clips_used)  # each clip stored once, however many queries it is in
        querier(pool, 3)  # the pool now holds the stored clips with their ids: none is stored again
        assert store.num_clips() <= len(pool)
        assert Querier(kind, store, "random", reward.member_returns, 0, "oracle").asked == 9  # a resumed run counts


def test_the_querier_refuses_an_unknown_strategy():
    with PreferenceStore(":memory:", env="x") as store, pytest.raises(ValueError, match="strategy 'best'"):
        Querier(Pairs(), store, "best", None, 0, "oracle")


def test_a_synthetic_teacher_answers_into_the_store_and_the_data_without_reading_the_store_back(monkeypatch):
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, _ = _stages(store)
        queries = querier(_pool(), 8, strategy="random")
        monkeypatch.setattr(store, "get_clips", lambda *a, **k: pytest.fail("the labels' clips were read back"))
        feedback(queries)
        assert data.n == store.num_labels() == 8
        for q in queries:  # the oracle's answer: the higher true return
            (c,) = [c for c in store.comparisons("labeled") if c.id == q.id]
            a, b = q.clips
            assert c.preference == (0.5 if a.true_return == b.true_return else float(a.true_return > b.true_return))


def test_skipped_answers_are_recorded_and_never_trained_on():
    with PreferenceStore(":memory:", env="x") as store:
        reward = _reward()
        data = LabeledData(Pairs(), reward.features, store, reward.device, OBS.shape, ACT.shape)
        class CantTell:  # a teacher that skips every pair
            name = "cant-tell"

            def __call__(self, pairs):
                return [None] * len(pairs)

        feedback = SyntheticFeedback(CantTell(), Pairs(), store, data, 4)
        querier = Querier(Pairs(), store, "random", reward.member_returns, 0, feedback.source)
        feedback(querier(_pool(), 4))
        assert data.n == 0 and [c.status for c in store.comparisons()] == ["skipped"] * 4
        with pytest.raises(TrainingError, match="labeled 0 of the 4 initial queries"):
            feedback.before_rl(4)


def test_the_data_splits_by_query_id_and_holds_each_clip_once():
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, _ = _stages(store)
        feedback(querier(_pool(8), 20, strategy="random"))
        train, val = data.split()
        assert train.n + val.n == data.n == 20
        ids = np.array(sorted(c.id for c in store.comparisons("labeled")))
        assert val.n == int(is_validation(ids).sum())
        assert len(train.clips) == len({i for c in store.comparisons("labeled") for i in (c.left_id, c.right_id)})


def test_the_data_refuses_clips_of_another_env():
    with PreferenceStore(":memory:", env="x") as store:
        reward = _reward()
        rng = np.random.default_rng(0)
        wide = [Clip(rng.normal(size=(5, 4)).astype(np.float32), np.zeros(5, np.int64), np.zeros(5, np.float32))
                for _ in range(2)]
        ids = store.add_clips(wide)
        (q,) = store.add_queries([tuple(ids)], source="oracle")
        store.record_labels([(q, 1.0)], labeler="oracle")
        data = LabeledData(Pairs(), reward.features, store, reward.device, OBS.shape, ACT.shape)
        with pytest.raises(StoreError, match="written for another env"):
            data.sync()


def test_a_refit_on_new_labels_takes_them_and_as_many_old_ones_each_on_its_side():
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, _ = _stages(store, batch=40)
        feedback(querier(_pool(60), 40, strategy="random"))
        everything = data.split()
        rng = np.random.default_rng(0)
        train, val, scale_on, held = data.split_new(frozenset(), rng, least=4)
        assert train.n + val.n == 40 and len(held) == 40  # nothing fitted yet: every label is new
        assert [b.n for b in scale_on] == [b.n for b in everything]
        feedback(querier(_pool(60, seed=1), 6, strategy="random"))  # 6 new labels
        train, val, scale_on, now = data.split_new(held, rng, least=4)
        assert train.n + val.n == 12 and len(now) == 46  # the 6 new ones and 6 old ones
        assert scale_on[0].n + scale_on[1].n == 46
        new = now - held
        picked = {(int(a), int(b)) for b in (train, val) for a, b in zip(b.left.tolist(), b.right.tolist())}
        rows = {label: (data._rows[label.clip_ids[0]], data._rows[label.clip_ids[1]]) for label in now}
        assert {rows[label] for label in new} <= picked
        # each label on its own side of the split, as in a refit on every label
        val_ids = {label for label in now if is_validation(np.array([label.id]))[0]}
        assert {(int(a), int(b)) for a, b in zip(val.left.tolist(), val.right.tolist())} == \
            {rows[label] for label in val_ids} & picked
        # a changed answer counts as new; with nothing new, `least` old ones are drawn
        changed = next(iter(held))
        data.add([changed._replace(value=1.0 - changed.value if changed.value != 0.5 else 1.0)])
        train, val, _, after = data.split_new(now, rng, least=4)
        assert train.n + val.n == 5 and after - now == {changed._replace(value=1.0 - changed.value if changed.value != 0.5 else 1.0)}
        train, val, _, _ = data.split_new(after, rng, least=4)
        assert train.n + val.n == 4


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_fitter_on_new_labels_fits_every_label_first_and_then_the_new_ones(asynchronous):
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, batch=30, asynchronous=asynchronous, new_only=True)
        fitter.trainer.batch_size = 8  # at least a batch of old labels is drawn
        seen = []
        train = fitter.trainer.train
        fitter.trainer.train = lambda t, v, **kw: seen.append((t.n + v.n, kw["scale_on"])) or train(t, v, **kw)
        feedback(querier(_pool(60), 30, strategy="random"))
        fitter.fit()
        assert seen[-1][0] == 30
        feedback(querier(_pool(60, seed=1), 20, strategy="random"))
        fitter.step(1000, start=True, final=False)
        fitter.close()
        n, scale_on = seen[-1]
        assert n == 40 and sum(b.n for b in scale_on) == 50  # 20 new, 20 old; the scale on all 50
        assert fitter.share.fitted == frozenset(data.split_new(frozenset(), np.random.default_rng(0))[3])
        # what the run reports of the saved ensemble is measured on every held-out label, not the share
        train, val = data.split()
        stats = fitter.last_stats
        assert (stats.n_train, stats.n_val) == (train.n, val.n) and stats.n_train + stats.n_val == 50
        assert stats.val_accuracy == pytest.approx(fitter.trainer.evaluate(val)[1])


def test_rankings_reach_the_data_best_first():
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, _ = _stages(store, rank_size=3)
        queries = querier(_pool(), 5, strategy="random")
        feedback(queries)
        train, val = data.split()
        assert train.n + val.n == 5 and train.items.shape[1] == 3
        for r in store.rankings("labeled"):
            returns = [c.true_return for c in store.get_clips(list(r.ordered))]
            assert returns == sorted(returns, reverse=True)


def test_human_feedback_follows_the_store_and_keeps_two_batches_waiting_at_most():
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, human=True, batch=3)
        assert feedback.to_ask(due=10, final=False) == 6  # two batches may wait
        assert feedback.to_ask(due=2, final=False) == 0 and feedback.to_ask(due=2, final=True) == 2
        queries = querier(_pool(), 6, strategy="random")
        feedback(queries)  # nobody has answered yet
        assert data.n == 0 and feedback.to_ask(due=10, final=False) == 0
        store.record_labels([(queries[0].id, 1.0), (queries[1].id, 0.0)], labeler="ann")
        feedback([])
        assert data.n == 2 and feedback.to_ask(due=10, final=False) == 2
        assert not feedback.refit_due(asked=0, new=2, final=False) and feedback.refit_due(asked=0, new=2, final=True)
        store.unlabel(queries[1].id, labeler="ann")  # taken back in the window
        feedback([])
        assert data.n == 1


def test_human_feedback_waits_for_the_initial_labels(tmp_path, capsys):
    import signal
    import threading

    def label(ids):  # a labeler's window: its own connection, after a while
        with PreferenceStore(tmp_path / "store.sqlite", create=False) as window:
            window.record_labels([(i, 1.0) for i in ids], labeler="ann")

    with PreferenceStore(tmp_path / "store.sqlite", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, human=True)
        queries = querier(_pool(), 3, strategy="random")
        answer = threading.Timer(0.3, label, args=([q.id for q in queries],))
        answer.start()
        signal.signal(signal.SIGALRM, lambda *_: pytest.fail("before_rl did not return once the labels were in"))
        signal.alarm(60)
        try:
            feedback.before_rl(3)
        finally:
            signal.alarm(0)
        answer.join()
        assert data.n == 3 and store.num_pending() == 0
    assert "waiting for 3 labels" in capsys.readouterr().out


def test_the_fitter_adopts_a_background_refit_after_its_delay_and_saves_it():
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, delay=100)
        saved = []
        fitter.save = lambda model: saved.append({k: v.clone() for k, v in model.state_dict().items()})
        feedback(querier(_pool(), 10, strategy="random"))
        before = {k: v.clone() for k, v in reward.model.state_dict().items()}
        assert fitter.will_adopt(50, start=True, final=False) is False
        assert fitter.step(50, start=True, final=False) is None  # fitting in the background
        assert all((reward.model.state_dict()[k] == v).all() for k, v in before.items())  # the live one waits
        assert not fitter.will_adopt(149, start=False, final=False) and fitter.step(149, False, False) is None
        assert fitter.will_adopt(150, start=False, final=False) and reward.version == 0
        stats = fitter.step(150, start=False, final=False)
        assert stats is not None and stats.n_train + stats.n_val == 10 and fitter.fitted_labels == 10
        assert reward.version == 1  # an adoption makes the member returns kept from version 0 stale
        assert any(not (reward.model.state_dict()[k] == v).all() for k, v in before.items())
        assert len(saved) == 1
        fitter.close()


def test_a_refit_under_way_is_adopted_when_the_run_ends():
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, delay=10_000)
        feedback(querier(_pool(), 10, strategy="random"))
        fitter.step(0, start=True, final=False)
        assert fitter.last_stats is None
        fitter.close()
        assert fitter.last_stats is not None


def _wait_for(condition, seconds=60.0):
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "the worker did not finish"
        time.sleep(0.01)


def test_the_async_fitter_never_makes_the_agent_wait_and_adopts_the_newest_refit():
    import threading

    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, asynchronous=True)
        feedback(querier(_pool(), 10, strategy="random"))
        release = threading.Event()
        real_train = fitter.trainer.train

        def held_train(*args, **kwargs):  # a refit that takes as long as the test says
            release.wait(60)
            return real_train(*args, **kwargs)

        fitter.trainer.train = held_train
        before = {k: v.clone() for k, v in reward.model.state_dict().items()}
        assert not fitter.will_adopt(0, start=True, final=False)
        assert fitter.step(0, start=True, final=False) is None  # asked for, under way: the agent goes on
        assert not fitter.will_adopt(100, start=False, final=False) and fitter.step(100, False, False) is None
        assert all((reward.model.state_dict()[k] == v).all() for k, v in before.items())
        release.set()
        _wait_for(lambda: fitter.refits == 1)
        assert fitter.will_adopt(200, start=False, final=False) and reward.version == 0
        stats = fitter.step(200, start=False, final=False)
        assert stats is not None and stats.n_train + stats.n_val == 10 and reward.version == 1
        assert any(not (reward.model.state_dict()[k] == v).all() for k, v in before.items())
        assert fitter.step(300, start=False, final=False) is None  # each refit is adopted once
        feedback(querier(_pool(seed=1), 6, strategy="random"))  # more labels on the last rollout
        release.clear()
        fitter.step(400, start=True, final=True)  # the agent does not wait for their refit, even now
        assert fitter.last_stats.n_train + fitter.last_stats.n_val == 10
        release.set()
        fitter.close()  # after the agent's last update: the saved ensemble has every label
        assert fitter.last_stats.n_train + fitter.last_stats.n_val == 16


def test_the_async_fitter_adopts_a_refit_under_way_at_close_and_reports_a_failed_one():
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, asynchronous=True)
        feedback(querier(_pool(), 10, strategy="random"))
        fitter.step(0, start=True, final=False)
        fitter.close()
        assert fitter.last_stats is not None and fitter.last_stats.n_train + fitter.last_stats.n_val == 10

        reward, querier, feedback, data, fitter = _stages(store, asynchronous=True)

        def diverge(*args, **kwargs):
            raise TrainingError("reward-model training diverged")

        fitter.trainer.train = diverge
        feedback(querier(_pool(), 4, strategy="random"))
        fitter.step(0, start=True, final=False)
        _wait_for(lambda: fitter._done == 1)
        with pytest.raises(TrainingError, match="diverged"):
            fitter.step(100, start=False, final=False)


def test_the_async_fitter_takes_no_gradient_step_while_the_agent_updates_and_runs_at_low_priority():
    import os
    import threading

    linux = sys.platform.startswith("linux")  # where a thread has a priority of its own
    agent_priority = os.getpriority(os.PRIO_PROCESS, 0) if linux else None
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, asynchronous=True, yield_to_agent=True)
        feedback(querier(_pool(), 10, strategy="random"))
        steps, threads = [], set()
        real_step = fitter.trainer.step

        def counted_step(*args, **kwargs):
            steps.append(fitter._open.is_set())
            threads.add(threading.get_native_id())
            return real_step(*args, **kwargs)

        fitter.trainer.step = counted_step
        fitter.pause()  # the agent's update runs
        fitter.step(0, start=True, final=False)
        _wait_for(lambda: fitter._worker.is_alive() and fitter._asked == 1)
        time.sleep(0.2)  # room for a step the gate should stop
        assert steps == [] and fitter.refits == 0
        fitter.resume()  # a rollout is collected: the worker trains
        _wait_for(lambda: fitter.refits == 1)
        assert steps and all(steps)  # every step with the gate open
        (tid,) = threads
        assert tid != threading.get_native_id()
        if linux:  # the worker lowered its own thread's priority, not the agent's
            # (compared with the agent's priority before the fitter started, not with 19: a suite run
            # under `nice -n 19` starts there, and its agent must stay where it started)
            assert os.getpriority(os.PRIO_PROCESS, tid) == 19
            assert os.getpriority(os.PRIO_PROCESS, 0) == agent_priority
        fitter.pause()
        feedback(querier(_pool(seed=1), 6, strategy="random"))
        fitter.step(100, start=True, final=True)
        fitter.close()  # the agent waits for the last refit, so the gate opens
        assert fitter.last_stats.n_train + fitter.last_stats.n_val == 16


@pytest.mark.parametrize("yield_to_agent", [False, True], ids=["runs-on", "yields"])
def test_the_async_workers_clock_splits_asking_fitting_and_the_time_beside_the_agents_update(yield_to_agent,
                                                                                             monkeypatch):
    import threading

    from prefrl import fitting

    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, asynchronous=True, yield_to_agent=yield_to_agent)
        feedback(querier(_pool(), 10, strategy="random"))
        clock = [0.0]  # the worker's clock, advanced by the test: no assertion on real time
        monkeypatch.setattr(fitting.time, "perf_counter", lambda: clock[0])
        real_step, real_wait, waiting, taken = fitter.trainer.step, fitter._open.wait, threading.Event(), []

        def step_of_20_ms(*args, **kwargs):
            clock[0] += 0.02
            taken.append(1)
            return real_step(*args, **kwargs)

        def wait(*args):
            waiting.set()
            return real_wait(*args)

        def ask():  # picking and answering: 100 ms
            clock[0] += 0.1

        fitter.trainer.step, fitter._open.wait = step_of_20_ms, wait
        fitter.ask(ask)
        fitter.pause()  # the agent's update runs the whole time the worker does
        fitter.step(0, start=True, final=False)
        if yield_to_agent:
            assert waiting.wait(60)  # the worker is held at its first gate
            clock[0] += 0.3  # the agent's update takes 300 ms
            fitter.resume()
        _wait_for(lambda: fitter.refits == 1)
        seconds = dict(fitter.seconds)
        fitter.close()
    steps = 0.02 * len(taken)  # the gradient steps' time; the passes over clips take none here
    assert taken
    assert seconds["ask"] == pytest.approx(0.1) and seconds["fit"] == pytest.approx(steps)
    if yield_to_agent:  # held until the update ended, then nothing ran beside it
        assert seconds["held"] == pytest.approx(0.3) and seconds.get("overlap", 0.0) == 0.0
    else:  # every step of it ran beside the update
        assert seconds["overlap"] == pytest.approx(0.1 + steps) and "held" not in seconds


def test_queries_handed_to_the_async_worker_are_picked_and_answered_there(tmp_path):
    import threading

    with PreferenceStore(tmp_path / "store.sqlite", env="x") as store:
        worker_store = PreferenceStore(tmp_path / "store.sqlite", any_thread=True)
        reward, querier, feedback, data, fitter = _stages(worker_store, asynchronous=True)
        feedback(querier(_pool(), 10, strategy="random"))
        fitter.fit()
        asked_in = []
        real_call = querier.__call__

        class Spy:
            def __call__(self, pool, n, strategy=None):
                asked_in.append(threading.current_thread().name)
                return real_call(pool, n, strategy)

        spy = Spy()
        fitter.ask(lambda: feedback(spy(_pool(seed=2), 6)))
        fitter.step(100, start=True, final=True)
        fitter.close()
        assert asked_in == ["prefrl-fit"]  # picked in the worker, not the agent's thread
        stats = fitter.last_stats
        assert stats.n_train + stats.n_val == 16 == data.n == store.num_labels()  # answered, stored, fitted
        worker_store.close()


class _Agent:
    """What the callback reads of an SB3 algorithm: its rollout buffer, n_steps, timesteps, logger."""

    def __init__(self, venv, n_steps):
        self.n_steps = n_steps
        self.num_timesteps = 0
        self.rollout_buffer = RolloutBuffer(n_steps, OBS, ACT, n_envs=venv.num_envs)
        self.logger = configure(None, [])
        self._venv = venv

    def get_env(self):
        return self._venv


class _Venv:
    """Two envs of random 3-vectors whose true reward is the first value."""

    num_envs = 2
    observation_space, action_space = OBS, ACT

    def __init__(self):
        self.rng = np.random.default_rng(0)
        self.obs = self.rng.uniform(-1, 1, (2, 3)).astype(np.float32)

    def reset(self):
        return self.obs

    def step_async(self, actions):
        pass

    def step_wait(self):
        true = self.obs[:, 0].copy()
        self.obs = self.rng.uniform(-1, 1, (2, 3)).astype(np.float32)
        return self.obs, true, np.zeros(2, bool), [{}, {}]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["fitter", "async-fitter"])
def test_the_callback_calls_the_stages_in_order_over_rollouts_without_ppo(asynchronous):
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, batch=4, asynchronous=asynchronous)
        recorder = ClipRecorder(2, 5, capacity=200)
        venv = LearnedRewardVecEnv(_Venv())
        n_steps, total = 20, 200
        schedule = LabelSchedule(24, 8, total, 50.0)
        callback = PreferenceCallback(venv, reward=reward, recorder=recorder, querier=querier, feedback=feedback,
                                      data=data, fitter=fitter, schedule=schedule, check=RefitCheck(50))
        agent = _Agent(venv, n_steps)
        callback.init_callback(agent)
        feedback(querier(_pool(), 8, strategy="random"))  # the initial labels, then the first fit
        fitter.fit()
        callback.on_training_start({}, {})  # as SB3's learn does
        venv.reset()
        labels, refits, checked, fresh = [], [], [], []
        while agent.num_timesteps < total:
            agent.rollout_buffer.reset()
            for _ in range(n_steps):  # what SB3's collect_rollouts does each step
                venv.step(np.array([0, 1]))
                agent.num_timesteps += 2
                agent.rollout_buffer.add(np.zeros((2, 3)), np.zeros((2, 1)), np.zeros(2), np.ones(2, bool),
                                         torch.zeros(2), torch.zeros(2))
                callback.on_step()
            callback.update_locals({"values": torch.zeros(2), "dones": np.zeros(2, bool)})
            record_obs = np.stack([s[0] for s in venv._steps])
            record_actions = np.stack([s[1] for s in venv._steps])
            callback.on_rollout_end()
            labels.append(data.n)
            refits.append(callback.rollout["refit"])
            checked.append("pair_accuracy_after" in callback.rollout)
            expected = reward(record_obs, record_actions)  # the ensemble after this rollout's refit, if any
            np.testing.assert_allclose(agent.rollout_buffer.rewards, expected, rtol=1e-5, atol=1e-6)
            # The clips scored by the ensemble in force keep its member returns: what picking reads.
            kept = [c for c in recorder.clips if c.scored_by == reward.version]
            if kept:
                fresh.append(len(kept))
                np.testing.assert_allclose(np.stack([c.member_returns for c in kept], axis=1),
                                           reward.member_returns(kept).numpy(), rtol=1e-4, atol=1e-5)
            if asynchronous:  # PPO's update takes a while: here the worker finishes within it
                _wait_for(lambda: fitter._done >= fitter._asked)
        callback.on_training_end()
        fitter.close()  # as training.train does after learn
        assert labels[-1] == 24 == querier.asked == store.num_labels()  # the whole budget, asked by the schedule
        assert fitter.last_stats.n_train + fitter.last_stats.n_val == 24  # the saved ensemble has every label
    assert labels == sorted(labels) and len(set(labels)) >= 3  # in rounds, not at once
    assert sum(refits) >= 2 and checked == [r == 1.0 for r in refits]  # each adoption checked before and after
    if not asynchronous:  # in place, one on the last rollout (an asynchronous one is adopted when it is done)
        assert refits[-1] == 1.0
    assert len(recorder.clips) == total // 5  # every step cut into 5-step clips
    assert fresh and querier.reused > 0  # queries were picked by kept member returns at least once


@pytest.mark.parametrize("worker", [False, True], ids=["rollout-scorer", "fit-worker"])
def test_the_background_threads_run_torch_on_half_the_agents_threads(worker):
    """The rollout scorer and the fit worker each take half the agent's torch threads (at least
    one) and the agent's own thread keeps them all, so that on 2 cores they do not run 4 threads
    between them; and half of the agent's count, not of what another background thread left."""
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        with PreferenceStore(":memory:", env="x") as store:
            reward, querier, feedback, data, fitter = _stages(store, asynchronous=worker)
            if worker:
                seen = []
                fitter.ask(lambda: seen.append(torch.get_num_threads()))
                feedback(querier(_pool(), 8, strategy="random"))
                fitter.step(100, start=True, final=False)
                fitter.close()
            else:
                callback = PreferenceCallback(LearnedRewardVecEnv(_Venv()), reward=reward, recorder=ClipRecorder(2, 5),
                                              querier=querier, feedback=feedback, data=data, fitter=fitter,
                                              schedule=LabelSchedule(8, 8, 100, 50.0), overlap=5)
                seen = [callback._executor.submit(torch.get_num_threads).result()]
                callback._executor.shutdown()
            assert seen == [2] and torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


def test_the_async_workers_cpu_seconds_grow_with_its_refits():
    with PreferenceStore(":memory:", env="x") as store:
        reward, querier, feedback, data, fitter = _stages(store, asynchronous=True)
        feedback(querier(_pool(), 10, strategy="random"))
        before = fitter.cpu_seconds()
        fitter.step(0, start=True, final=False)
        with fitter._state:
            assert fitter._state.wait_for(lambda: fitter._done >= fitter._asked, timeout=120)
        assert fitter.refits == 1 and fitter.cpu_seconds() > before  # the refit ran on the worker's clock
        fitter.close()
