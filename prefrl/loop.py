"""The one preference loop, closed inside SB3's ``learn``: clips -> queries -> labels -> reward model
-> learned reward for the agent (into PPO's or A2C's rollout buffer, or an off-policy learner's
replay buffer, relabeled whole after each refit).

Each stage is an object passed in, with one job (see :mod:`prefrl.queries`, :mod:`prefrl.feedback`,
:mod:`prefrl.labeled_data`, :mod:`prefrl.fitting`, :mod:`prefrl.reward_fn`); the callback only calls
them in order at the end of each rollout.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import TrainFrequencyUnit

from .clips import Clip, ClipRecorder
from .diagnostics import RefitCheck
from .exploration import knn_novelty
from .feedback import Feedback
from .fitting import AsyncFitter, Fitter, half_the_threads
from .labeled_data import LabeledData
from .learned_reward import LearnedRewardVecEnv, StepRecord, relabel_replay, relabel_rollout, write_replay
from .queries import Querier
from .reward_fn import LearnedReward
from .reward_training import TrainStats
from .schedule import LabelSchedule

__all__ = ["PreferenceCallback"]


class PreferenceCallback(BaseCallback):
    """At the end of each rollout: cut clips, ask the labels the schedule has due, refit the reward
    model when the feedback calls for it, and write the learned reward into the rollout buffer (one
    batch for the whole rollout).

    With an off-policy learner (SAC, TD3, DQN: one with a ``replay_buffer``) the learned reward of
    each rollout's new transitions is written into the replay buffer at its end, before the updates
    that follow; the rest (clips, queries, refits) runs once ``round_steps`` env steps have
    gathered, and after each refit every transition in the replay buffer is relabeled with the new
    ensemble (PEBBLE). The novelty bonus is on-policy only.

    Args:
        venv: the deferred :class:`LearnedRewardVecEnv` the agent steps (it records every step).
        reward: the learned reward (reads the live ensemble): its ``scored`` pass gives each
            rollout's learned reward and the members' outputs its clips keep for query selection,
            and its ``version`` says which refit those came from.
        recorder: cuts recorded steps into candidate clips.
        querier: picks and stores queries.
        feedback: answers them (synthetic or human) and says when to refit.
        data: the labeled data.
        fitter: refits and adopts the ensemble.
        schedule: how many labels are due by each timestep.
        explore_steps: timesteps over which a state-novelty bonus, weight decaying linearly from 1 to 0,
            is added to the learned reward (0: none).
        overlap: score the rollout's steps in a background thread while the rollout is still being
            collected, ``overlap`` steps at a time (0: all at once at the end). On a CPU, collecting
            a rollout leaves a core idle (the envs step one at a time) and the reward CNN's
            forward pass can run there (on half the agent's torch threads); a rollout after which
            the ensemble was refit is scored again at the end with the new ensemble.
        check: at each refit, scores the ensemble before and after it against the true reward
            (:mod:`prefrl.diagnostics`); None: no check.
        probe: called with the algorithm and the timestep before each round of queries; the clips
            it returns (the deterministic policy's, say) join the query candidates.
        ask_in_worker: hand each round of queries to the fitter's worker (:meth:`AsyncFitter.ask`),
            which picks them from a copy of the candidate clips and has them answered before its
            next refit, off the agent's path (synthetic feedback only: the querier and feedback
            must then use a store connection of their own).
        on_update: called after each rollout with the callback (``rollout`` holds its figures); with an
            off-policy learner, after each round.
        round_steps: off-policy learners only: env steps (all envs) between rounds.

    ``seconds`` adds up the wall time of each stage (``collect``, ``probe``, ``ask``, ``fit``,
    ``check``, ``relabel``, ``log``): where the loop's overhead over plain PPO goes. ``rollout``
    holds the last rollout's figures for ``metrics.csv`` (mean true and learned reward per step, and
    on a refit the checks before and after it).
    """

    def __init__(self, venv: LearnedRewardVecEnv, *, reward: LearnedReward, recorder: ClipRecorder,
                 querier: Querier, feedback: Feedback, data: LabeledData, fitter: Fitter | AsyncFitter,
                 schedule: LabelSchedule, explore_steps: int = 0, overlap: int = 0, check: RefitCheck | None = None,
                 probe: Callable[[BaseAlgorithm, int], list[Clip]] | None = None, ask_in_worker: bool = False,
                 on_update: Callable[[PreferenceCallback], None] | None = None, round_steps: int = 1000):
        super().__init__()
        self.venv = venv
        self.reward = reward
        self.recorder = recorder
        self.querier = querier
        self.feedback = feedback
        self.data = data
        self.fitter = fitter
        self.schedule = schedule
        self.explore_steps = explore_steps
        self.overlap = overlap
        self.check = check
        self.probe = probe
        if ask_in_worker and not isinstance(fitter, AsyncFitter):
            raise ValueError("PreferenceCallback: ask_in_worker needs an AsyncFitter")
        self.ask_in_worker = ask_in_worker
        self.asked = 0  # queries asked, or handed to the worker, so far (from the querier's count at training start)
        self.on_update = on_update
        self.round_steps = round_steps
        self.replay = None  # an off-policy learner's replay buffer (set when training starts)
        self.relabeled = 0  # replay-buffer transitions relabeled after refits, all together
        self._written: list[np.ndarray] = []  # learned rewards written into the replay buffer this round
        self._written_steps = 0  # their steps, counted as they are written (SAC writes one a step)
        self._rollout_steps = 0
        self._learned_return = np.zeros(venv.num_envs)
        self.learned_episode_returns: list[float] = []
        self.seconds: dict[str, float] = defaultdict(float)
        self._clock = time.perf_counter()
        on_cpu = getattr(reward, "device", torch.device("cpu")).type == "cpu"  # any callable may score
        self._executor = (ThreadPoolExecutor(1, thread_name_prefix="prefrl-reward",
                                             initializer=half_the_threads if on_cpu else None,
                                             initargs=(torch.get_num_threads(),) if on_cpu else ())
                          if overlap else None)
        self._scored: list[Future] = []  # background scores of this rollout's steps, in order
        # CPU seconds of the background scorer's thread (torch runs there on one thread on 2 cores;
        # with more, its helper threads' share is not counted).
        self.scorer_cpu = 0.0
        self._submitted = 0  # steps of this rollout handed to the background thread
        self.rollout: dict[str, float] = {}

    def _on_step(self) -> bool:
        if self.overlap and self.venv.n_recorded - self._submitted >= self.overlap:
            obs, actions = self.venv.recorded(self._submitted, self._submitted + self.overlap)
            self._scored.append(self._executor.submit(self._scored_in_background, obs, actions))
            self._submitted += self.overlap
        return True

    def _scored_in_background(self, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`LearnedReward.scored` in the background thread, counting that thread's CPU seconds
        (``scorer_cpu``; one thread writes it)."""
        began = time.thread_time()
        try:
            return self.reward.scored(obs, actions)
        finally:
            self.scorer_cpu += time.thread_time() - began

    def _lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self._clock
        self._clock = now

    def _score(self, record: StepRecord, scored: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """The learned reward of the rollout's steps (T, n_envs) and each member's unnormalized
        output of them (T, n_envs, M): what the background thread scored, and the rest now."""
        t = sum(len(learned) for learned, _ in scored)
        if t < len(record.obs):
            scored.append(self.reward.scored(record.obs[t:], record.actions[t:]))
        return np.concatenate([learned for learned, _ in scored]), np.concatenate([members for _, members in scored])

    def _ask(self, due: int, final: bool) -> int:
        """Ask what the feedback takes of the labels due; the answers that come go into the data.
        With ``ask_in_worker`` they are handed over to be picked from the clips held now."""
        n = self.feedback.to_ask(due, final)
        version = self.reward.version  # the ensemble that scored the clips of the rollouts since its refit
        if n and self.probe is not None:
            # Scored here by the ensemble in force, as the rollouts' clips were: a pick among kept
            # member returns would otherwise leave the probe's clips out.
            probed = self.probe(self.model, self.num_timesteps)
            returns = self.reward.member_returns(probed).cpu().numpy() if probed else None
            self.recorder.clips.extend(dataclasses.replace(clip, member_returns=returns[:, k], scored_by=version)
                                       for k, clip in enumerate(probed))
            self._lap("probe")
        if n and self.ask_in_worker:
            pool = list(self.recorder.clips)
            self.fitter.ask(lambda: self.feedback(self.querier(pool, n, scored_by=version)))
            asked = n
        else:
            queries = self.querier(self.recorder.clips, n, scored_by=version) if n else []
            self.feedback(queries)
            asked = len(queries)
        self.asked += asked
        self._lap("ask")
        return asked

    def _on_training_start(self) -> None:
        self.asked = self.querier.asked  # the initial queries (or a resumed run's) are asked by now
        self.replay = getattr(self.model, "replay_buffer", None)
        n_envs = self.venv.num_envs
        if self.replay is None:
            self._rollout_steps = self.model.n_steps * n_envs
        else:
            freq = self.model.train_freq
            self._rollout_steps = (freq.frequency * n_envs if freq.unit == TrainFrequencyUnit.STEP
                                   else self.round_steps)

    def _write_replay(self) -> None:
        """The learned reward of the transitions stored since the last call, into the replay buffer."""
        done = self._written_steps
        if self.venv.n_recorded > done:
            learned = self.reward(*self.venv.recorded(done, self.venv.n_recorded))
            write_replay(self.replay, learned)
            self._written.append(learned)
            self._written_steps += len(learned)

    def _relabel_replay(self) -> None:
        space = self.venv.observation_space, self.venv.action_space
        unscale = self.model.policy.unscale_action if isinstance(space[1], spaces.Box) else None
        self.relabeled += relabel_replay(self.replay, self.reward, space[0].shape, space[1].shape, unscale)

    def _on_rollout_start(self) -> None:
        self.fitter.resume()

    def _on_rollout_end(self) -> None:
        self._clock = time.perf_counter()
        t = self.num_timesteps
        final = t + self._rollout_steps > self.schedule.total_timesteps
        if self.replay is not None:
            self._write_replay()  # before the learner's updates that follow this rollout
            self._lap("relabel")
            if self.venv.n_recorded * self.venv.num_envs < self.round_steps and not final:
                self.fitter.pause()
                return
        record = self.venv.drain()
        # Wait for the background scores before asking or refitting touches the ensemble.
        scored = [f.result() for f in self._scored]
        self._scored, self._submitted = [], 0
        if record is None:
            return
        if self.replay is not None:  # written rollout by rollout with the ensemble as it was
            learned, self._written, self._written_steps = np.concatenate(self._written), [], 0
            members = None
        else:
            learned, members = self._score(record, scored)  # with the ensemble as it is; rescored after a refit
        self._lap("relabel")
        # The clips keep each member's return, for picking queries while this ensemble is in force.
        self.recorder.add_steps(record.obs, record.actions, record.true_rewards, record.dones, t, record.frames,
                                members, self.reward.version)
        self._lap("collect")

        asked = self._ask(self.schedule.target(t) - self.asked, final)
        start = self.feedback.refit_due(asked, self.data.n - self.fitter.fitted_labels, final)
        refit = self.fitter.will_adopt(t, start, final)
        fresh = self.check.fresh(self.recorder.clips) if self.check and refit else None
        before = self._check(fresh, learned, record) if fresh else None
        stats = self.fitter.step(t, start, final)
        self._lap("fit")
        if stats is not None:
            self._log_fit(stats)

        self.rollout = {"true_reward": float(record.true_rewards.mean()), "refit": float(refit)}
        if refit:
            learned = self.reward(record.obs, record.actions)
            if self.replay is not None:
                self._relabel_replay()
            self._lap("relabel")
            if fresh:
                after = self._check(fresh, learned, record)
                for name, check in (("before", before), ("after", after)):
                    for key, value in check.as_dict().items():
                        self.logger.record(f"diagnostics/{key}_{name}", value)
                        self.rollout[f"{key}_{name}"] = value
        self.rollout["learned_reward"] = float(learned.mean())
        if self.replay is None:
            weight = 1.0 - t / self.explore_steps if self.explore_steps else 0.0
            if weight > 0:
                novelty = knn_novelty(record.obs.reshape(-1, *record.obs.shape[2:]), seed=t)
                learned = learned + weight * self.reward.model.config.reward_std * novelty.reshape(learned.shape)
                self.logger.record("prefrl/novelty_weight", weight)
            relabel_rollout(self.model.rollout_buffer, learned, self.locals["values"], self.locals["dones"])
        self._lap("relabel")
        self._log_returns(learned, record.dones)
        if self.on_update is not None:
            self.on_update(self)
        self._lap("log")
        self.fitter.pause()  # the agent's update follows

    def _check(self, fresh, learned: np.ndarray, record: StepRecord):
        check = self.check(self.reward, fresh, learned, record.true_rewards)
        self._lap("check")
        return check

    def _log_fit(self, stats: TrainStats) -> None:
        for key in ("val_accuracy", "val_loss", "train_loss", "train_accuracy", "epochs"):
            self.logger.record(f"reward_model/{key}", getattr(stats, key))

    def _log_returns(self, learned: np.ndarray, dones: np.ndarray) -> None:
        for t in range(len(learned)):
            self._learned_return += learned[t]
            for i in np.flatnonzero(dones[t]):
                self.learned_episode_returns.append(float(self._learned_return[i]))
                self._learned_return[i] = 0.0
        self.logger.record("prefrl/labels", self.data.n)
        if self.learned_episode_returns:
            self.logger.record("prefrl/learned_episode_return", float(np.mean(self.learned_episode_returns[-20:])))

    def _on_training_end(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
        # The fitter is closed by whoever built it, after ``learn`` (training.train): its last refit,
        # on every label, makes the saved ensemble and is not the agent's time.
