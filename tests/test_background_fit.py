"""Refits in a background thread: PPO's reward switches on a fixed step, so a run repeats exactly."""

import copy
import csv
import json

import pytest
import torch

from prefrl import TrainConfig, train


def _metrics(run):
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]


@pytest.mark.slow
def test_a_background_refit_switches_on_a_fixed_step_and_repeats_exactly(tmp_path):
    runs = []
    for name in ("a", "b"):
        run = tmp_path / name
        train(TrainConfig("cartpole", labels=30, steps=8192, seed=2, run_dir=str(run), progress_bar=False,
                          overrides={"fit_delay": 1024, "reward_epochs": 20}))
        runs.append(run)
    first, second = _metrics(runs[0]), _metrics(runs[1])
    assert first == second  # however the two threads were scheduled
    a = torch.load(runs[0] / "reward_model.pt", weights_only=True)
    b = torch.load(runs[1] / "reward_model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Labels arrive on one rollout; the ensemble fitted on them takes over at least 1024 steps later,
    # or earlier only when the next labels arrive first (a new fit starts from the adopted one), or
    # at the last rollout.
    asked = [int(r["timesteps"]) for i, r in enumerate(first) if i and r["labels"] != first[i - 1]["labels"]]
    adopted = [int(r["timesteps"]) for r in first if r["refit"] == "1"]
    assert len(asked) >= 3 and adopted
    last = int(first[-1]["timesteps"])
    for t, following in zip(asked, asked[1:] + [last]):
        switch = min(s for s in adopted if s > t)
        assert switch >= min(t + 1024, following, last)
        assert switch <= following  # never later than the next labels
    assert int(first[-1]["labels"]) == 30


def test_a_background_refit_needs_a_trainer_of_its_own_copy():
    from prefrl.fitting import Fitter
    from prefrl.reward_model import RewardEnsemble, RewardModelConfig
    from prefrl.reward_training import EnsembleTrainer

    model = RewardEnsemble(RewardModelConfig(4))
    with pytest.raises(ValueError, match="copy"):
        Fitter(EnsembleTrainer(model), model, data=None, delay=100)
    Fitter(EnsembleTrainer(copy.deepcopy(model)), model, data=None, delay=100).close()


def test_the_greedy_probe_plays_the_deterministic_policy_and_cuts_its_clips():
    import numpy as np
    from stable_baselines3.common.vec_env import DummyVecEnv

    from prefrl.envs import make_env
    from prefrl.build import greedy_probe

    venv = DummyVecEnv([lambda: make_env("cartpole") for _ in range(2)])
    venv.seed(0)

    class _AlwaysLeft:
        deterministic = []

        def predict(self, obs, deterministic=False):
            self.deterministic.append(deterministic)
            return np.zeros(len(obs), np.int64), None

    algo = _AlwaysLeft()
    clips = greedy_probe(venv, steps=200, clip_length=25)(algo, 1234)
    assert algo.deterministic and all(algo.deterministic)
    assert len(clips) == 2 * (100 // 25) and {c.length for c in clips} == {25} and {c.timestep for c in clips} == {1234}
    assert min(c.true_rewards.min() for c in clips) < -40  # pushing left the whole time falls: the -50 shows


@pytest.mark.slow
def test_the_probes_clips_are_query_candidates_at_every_round(tmp_path, monkeypatch):
    import prefrl.build as build_module
    from prefrl.queries import Querier

    made, seen = [], []
    real_probe, real_ask = build_module.greedy_probe, Querier.__call__

    def probe_factory(*args):
        probe = real_probe(*args)

        def recorded(algo, timestep):
            clips = probe(algo, timestep)
            made.append(clips)
            return clips
        return recorded

    def ask(self, pool, n, strategy=None, scored_by=None):
        if made:  # the online rounds: the last probe's clips are in the pool asked from, scored by the
            # ensemble in force as the rollouts' clips are (a pick among kept returns takes them too)
            seen.append(all(any(c.obs is p.obs and p.scored_by == scored_by and p.member_returns is not None
                                for p in pool) for c in made[-1]))
        return real_ask(self, pool, n, strategy, scored_by)

    monkeypatch.setattr(build_module, "greedy_probe", probe_factory)
    monkeypatch.setattr(Querier, "__call__", ask)
    train(TrainConfig("cartpole", labels=12, steps=4096, seed=0, run_dir=str(tmp_path / "r"), progress_bar=False,
                      overrides={"greedy_steps": 400, "reward_epochs": 2}))
    assert len(made) >= 3 and seen == [True] * len(made)
    assert all(len(clips) == 8 for clips in made)  # 8 envs x 50 steps: one 50-step clip each


@pytest.mark.slow
def test_an_asynchronous_refit_run_asks_every_label_and_saves_a_refit_on_all_of_them(tmp_path):
    run = tmp_path / "async"
    summary = train(TrainConfig("cartpole", labels=30, steps=8192, seed=2, run_dir=str(run), progress_bar=False,
                                overrides={"fit_async": True, "reward_epochs": 20}))
    rows = _metrics(run)
    # every label asked and stored (the worker asks the last ones after the last rollout has been logged)
    assert summary["labels_used"] == 30 == summary["queries_asked"] and int(rows[-1]["labels"]) <= 30
    # refits were adopted along the way, and the saved ensemble was fit on every label (after learn)
    assert sum(r["refit"] == "1" for r in rows) >= 2 and summary["rm_labels"] == 30
    saved = json.loads((run / "config.json").read_text())["preset"]
    assert saved["fit_async"] is True
    assert summary["rm_val_accuracy"] is not None and (run / "reward_model.pt").exists()
