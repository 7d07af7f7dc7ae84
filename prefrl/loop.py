"""The one preference loop: clips -> queries -> labels -> reward model -> learned reward for PPO."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from .clips import Clip, ClipRecorder
from .diagnostics import RewardCheck, check_reward
from .exploration import knn_novelty
from .learned_reward import LearnedRewardVecEnv, StepRecord, relabel_rollout
from .queries import select_groups
from .reward_model import RewardEnsemble, step_features
from .reward_training import ComparisonBatch, EnsembleTrainer, RankingBatch, TrainStats, is_validation
from .schedule import LabelSchedule
from .errors import StoreError
from .store import PreferenceStore
from .teachers import OracleTeacher, SimulatedTeacher

__all__ = ["PreferenceLoop", "PreferenceCallback"]


class PreferenceLoop:
    """Owns the stages between rollouts and the learned reward.

    Args:
        store: where queried clips and every comparison go.
        teacher: answers queries at once (a synthetic teacher), or None: people answer them later,
            through the store (``prefrl label``), and the loop trains on labels as they arrive.
        model: the reward-model ensemble.
        trainer: fits ``model`` to the stored labels.
        recorder: cuts rollouts into candidate clips.
        observation_space, action_space: the env's spaces, for the step features.
        query: ``random`` or ``disagreement``.
        seed: seeds query selection.
        save_dir: where each refit ensemble is saved (``reward_model.pt`` + ``.json``), if given.
        pessimism: PPO's reward is the ensemble mean less this many member stds (0: the mean).
        rank_size: clips per query: 2 asks pairs (Bradley–Terry); K > 2 asks the teacher to rank K
            clips and trains on the rankings with the Plackett–Luce loss (synthetic teachers only).
    """

    def __init__(self, *, store: PreferenceStore, teacher: OracleTeacher | SimulatedTeacher | None, model: RewardEnsemble,
                 trainer: EnsembleTrainer, recorder: ClipRecorder, observation_space: spaces.Space,
                 action_space: spaces.Space, query: str, seed: int, save_dir: Path | None = None,
                 pessimism: float = 0.0, rank_size: int = 2):
        self.store = store
        self.teacher = teacher
        self.model = model
        self.trainer = trainer
        self.recorder = recorder
        self.observation_space = observation_space
        self.action_space = action_space
        self.query = query
        self.rng = np.random.default_rng(seed)
        self.save_dir = save_dir
        self.pessimism = pessimism
        self.device = model.out_mean.device
        self.rank_size = rank_size
        self.asked = len(store.comparisons()) + len(store.rankings())
        self.fitted_labels = 0  # labels in the store at the last fit
        self.last_stats: TrainStats | None = None
        self._rows: dict[int, int] = {}  # clip id -> row of self._clips
        self._clips: torch.Tensor | None = None  # step features of every labeled clip, once each

    def _step_features(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        config = self.model.config
        return step_features(obs, actions, self.observation_space, self.action_space, config.use_action,
                             flatten=config.arch == "mlp")

    def features(self, obs: np.ndarray, actions: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self._step_features(obs, actions), device=self.device)

    @torch.no_grad()
    def learned_rewards(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The learned reward of steps shaped (..., *obs_shape) and (..., *act_shape): (...)."""
        self.model.eval()
        x = self.features(obs, actions)
        lead = x.shape[:x.dim() - len(self.model.in_shape)]
        return self.model(x.reshape(-1, *self.model.in_shape), self.pessimism).reshape(lead).cpu().numpy()

    @torch.no_grad()
    def _member_returns(self, clips: Sequence[Clip]) -> torch.Tensor:
        """Each member's unnormalized return of each clip (M, C): the scale the members were fitted on."""
        self.model.eval()
        step = len(clips) if self.model.config.arch == "mlp" else 32  # bounds CNN memory
        out = []
        for i in range(0, len(clips), step):
            part = clips[i:i + step]
            x = self.features(np.stack([c.obs for c in part]), np.stack([c.actions for c in part]))
            c, length = x.shape[:2]
            out.append(self.model.raw(x.reshape(-1, *self.model.in_shape)).reshape(-1, c, length).sum(-1))
        return torch.cat(out, dim=1)

    def collect(self, record: StepRecord, timestep: int) -> None:
        """Cut recorded steps into candidate clips."""
        self.recorder.add_steps(record.obs, record.actions, record.true_rewards, record.dones, timestep,
                                record.frames)

    def ask(self, n: int, strategy: str | None = None) -> int:
        """Query ``n`` pairs (or groups of ``rank_size`` clips) from the candidate clips and have the
        teacher label them (with no teacher they wait in the store for people); returns how many were
        asked (fewer if there are too few distinct clips)."""
        pool = self.recorder.clips
        strategy = strategy or self.query
        groups = select_groups(pool, n, self.rank_size, strategy, self.rng,
                               self._member_returns if strategy != "random" else None)
        if not groups:
            return 0
        unsaved = sorted({k for group in groups for k in group if pool[k].clip_id is None})
        for k, clip_id in zip(unsaved, self.store.add_clips([pool[k] for k in unsaved])):
            pool[k] = dataclasses.replace(pool[k], clip_id=clip_id)
        source = self.teacher.name if self.teacher else "human"
        if self.rank_size > 2:
            ids = self.store.add_ranking_queries([tuple(pool[k].clip_id for k in g) for g in groups], source=source)
            if self.teacher is not None:
                orders = self.teacher.rank([[pool[k] for k in g] for g in groups])
                self.store.record_rankings(list(zip(ids, orders)), labeler=self.teacher.name)
        else:
            ids = self.store.add_queries([(pool[i].clip_id, pool[j].clip_id) for i, j in groups], source=source)
            if self.teacher is not None:
                preferences = self.teacher([(pool[i], pool[j]) for i, j in groups])
                self.store.record_labels(list(zip(ids, preferences)), labeler=self.teacher.name)
        self.asked += len(groups)
        return len(groups)

    def _clip_rows(self, clip_ids: list[int]) -> torch.Tensor:
        """Rows of ``self._clips`` holding these clips, loading those not yet held from the store.

        Each labeled clip is held once, on the model's device, in its stored dtype (uint8 frames on
        Atari: 0.7 MB a clip); the buffer grows by doubling, so a refit copies nothing already held.
        """
        missing = [i for i in dict.fromkeys(clip_ids) if i not in self._rows]
        if missing:
            clips = self.store.get_clips(missing)
            obs_shape, act_shape = self.observation_space.shape, self.action_space.shape
            for c in clips:
                if c.obs.shape[1:] != obs_shape or c.actions.shape[1:] != act_shape or len(c.actions) != len(c.obs):
                    raise StoreError(
                        f"clip {c.clip_id} in {self.store.path} has observations {c.obs.shape[1:]} and actions "
                        f"{c.actions.shape[1:]} a step, but the env has {obs_shape} and {act_shape}: the store was "
                        "written for another env or version; use a new --run-dir")
            new = torch.as_tensor(np.stack([self._step_features(c.obs, c.actions) for c in clips]), device=self.device)
            held = len(self._rows)
            if self._clips is None or held + len(new) > len(self._clips):
                grown = torch.empty((max(2 * held, held + len(new)), *new.shape[1:]), dtype=new.dtype,
                                    device=self.device)
                if held:
                    grown[:held] = self._clips[:held]
                self._clips = grown
            self._clips[held:held + len(new)] = new
            self._rows.update({clip_id: held + k for k, clip_id in enumerate(missing)})
        return torch.as_tensor([self._rows[i] for i in clip_ids], dtype=torch.long, device=self.device)

    def labeled(self) -> tuple[ComparisonBatch | RankingBatch, ComparisonBatch | RankingBatch]:
        """All labeled comparisons (or, with ``rank_size`` > 2, rankings) in the store, split into
        training and validation; their clips are held once and indexed."""
        if self.rank_size > 2:
            rankings = self.store.rankings("labeled")
            ids = np.array([r.id for r in rankings])
            rows = self._clip_rows([i for r in rankings for i in r.ordered])
            batch = RankingBatch(rows.reshape(len(rankings), self.rank_size), self._clips[:len(self._rows)])
        else:
            comparisons = self.store.comparisons("labeled")
            ids = np.array([c.id for c in comparisons])
            left = self._clip_rows([c.left_id for c in comparisons])
            right = self._clip_rows([c.right_id for c in comparisons])
            pref = torch.as_tensor([c.preference for c in comparisons], dtype=torch.float32, device=self.device)
            batch = ComparisonBatch(left, right, pref, self._clips[:len(self._rows)])
        held_out = is_validation(ids)
        if held_out.all():  # a handful of labels, all on the validation side: train on them, validate on none
            held_out[:] = False
        val = torch.as_tensor(np.flatnonzero(held_out), device=self.device, dtype=torch.long)
        train = torch.as_tensor(np.flatnonzero(~held_out), device=self.device, dtype=torch.long)
        return batch.subset(train), batch.subset(val)

    def fit_job(self, epochs: int | None = None) -> Callable[[], TrainStats]:
        """The refit on every label in the store now, as a call to make now or in another thread.

        The labels are read here; the call trains only the trainer's model. When that is a copy of
        :attr:`model` (the ensemble PPO's reward and the queries read), PPO and query selection go on
        with the live ensemble during the fit, and :meth:`adopt` makes the refit one live.
        """
        train, val = self.labeled()
        self.fitted_labels = train.n + val.n
        return lambda: self.trainer.train(train, val, epochs=epochs)

    def adopt(self, stats: TrainStats) -> TrainStats:
        """Make the trainer's refit ensemble the live one (and save it)."""
        if self.trainer.model is not self.model:
            self.model.load_state_dict(self.trainer.model.state_dict())
        self.last_stats = stats
        if self.save_dir is not None:
            self.model.save(self.save_dir)
        return stats

    def fit(self, epochs: int | None = None) -> TrainStats:
        """Retrain the ensemble on every labeled comparison in the store (warm start), in place."""
        return self.adopt(self.fit_job(epochs)())


class PreferenceCallback(BaseCallback):
    """Closes the loop inside SB3's ``learn``: at the end of each rollout it cuts clips, asks the
    labels the schedule has due, retrains the reward model and writes the learned reward into the
    rollout buffer (one batch for the whole rollout).

    Args:
        loop: the preference loop.
        venv: the deferred :class:`LearnedRewardVecEnv` PPO steps.
        schedule: how many labels are due by each timestep.
        label_batch: fewest new labels asked at once (the last batch may be smaller).
        explore_steps: timesteps over which a state-novelty bonus, weight decaying linearly from 1 to 0,
            is added to the learned reward (0: none).
        on_update: called after each rollout with a dict of the figures for ``metrics.csv``.
        overlap: score the rollout's steps in a background thread while the rollout is still being
            collected, ``overlap`` steps at a time (0: all at once at the end). On a CPU, collecting
            a rollout leaves a core idle (the envs step one at a time) and the reward CNN's
            forward pass can run there; a rollout after which the ensemble was refit is scored
            again at the end with the new ensemble.
        check_clips: at each refit, the ensemble before and after it is scored against the true
            reward (:mod:`prefrl.diagnostics`) on this many of the policy's most recent clips and on
            the rollout's steps (0: no check).
        fit_delay: refit in a background thread, PPO going on with the current ensemble, and switch
            to the refit one at the first rollout end at least this many env steps after the fit
            began (0: refit in place while PPO waits). A fit slower than that is waited for, so
            the switch falls on the same step however busy the machine is, and a run repeats
            exactly. Needs the loop's trainer to train a copy of the live ensemble. The paper's
            reward model trained asynchronously.
        probe: called with the algorithm and the timestep before each round of queries; the clips
            it returns (the deterministic policy's, say) join the query candidates.

    ``seconds`` adds up the wall time of each stage (``collect``, ``ask``, ``fit``, ``check``,
    ``relabel``, ``log``): where the loop's overhead over plain PPO goes. ``rollout`` holds the
    last rollout's figures for ``metrics.csv`` (mean true and learned reward per step, and on a
    refit the checks before and after it).
    """

    def __init__(self, loop: PreferenceLoop, venv: LearnedRewardVecEnv, schedule: LabelSchedule,
                 label_batch: int, explore_steps: int = 0, on_update=None, overlap: int = 0,
                 check_clips: int = 200, fit_delay: int = 0,
                 probe: Callable[[BaseAlgorithm, int], list[Clip]] | None = None):
        if fit_delay and loop.trainer.model is loop.model:
            raise ValueError("PreferenceCallback: fit_delay > 0 needs a trainer that trains a copy of the live "
                             "ensemble (EnsembleTrainer(copy.deepcopy(model)))")
        super().__init__()
        self.loop = loop
        self.venv = venv
        self.schedule = schedule
        self.label_batch = label_batch
        self.explore_steps = explore_steps
        self.on_update = on_update
        self._learned_return = np.zeros(venv.num_envs)
        self.learned_episode_returns: list[float] = []
        self.seconds: dict[str, float] = defaultdict(float)
        self._clock = time.perf_counter()
        self.overlap = overlap
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="prefrl-reward") if overlap else None
        self._scored: list[Future] = []  # background scores of this rollout's steps, in order
        self._submitted = 0  # steps of this rollout handed to the background thread
        self.check_clips = check_clips
        self._check_rng = np.random.default_rng(0)  # its own stream: checking never changes which labels are asked
        self.rollout: dict[str, float] = {}
        self.fit_delay = fit_delay
        self._fitter = ThreadPoolExecutor(1, thread_name_prefix="prefrl-fit") if fit_delay else None
        self._fitting: Future | None = None  # the refit under way in the background
        self._adopt_at = 0  # the env step from which the refit under way is adopted
        self.probe = probe

    def _on_step(self) -> bool:
        if self.overlap and self.venv.n_recorded - self._submitted >= self.overlap:
            obs, actions = self.venv.recorded(self._submitted, self._submitted + self.overlap)
            self._scored.append(self._executor.submit(self.loop.learned_rewards, obs, actions))
            self._submitted += self.overlap
        return True

    def _rollout_rewards(self, record: StepRecord, done: list[np.ndarray], refit: bool) -> np.ndarray:
        """The learned reward of the rollout's steps (T, n_envs): ``done``, what the background
        thread scored, and the rest now; all of it now if the ensemble was refit since."""
        if refit or not done:
            return self.loop.learned_rewards(record.obs, record.actions)
        t = sum(len(d) for d in done)
        if t < len(record.obs):
            done.append(self.loop.learned_rewards(record.obs[t:], record.actions[t:]))
        return np.concatenate(done)

    def _start_fit(self) -> None:
        job = self.loop.fit_job()
        if self._fitter is None:
            self._fitting = Future()
            self._fitting.set_result(job())
        else:
            self._fitting = self._fitter.submit(job)
            self._adopt_at = self.num_timesteps + self.fit_delay
        self._lap("fit")

    def _adopt(self) -> None:
        stats = self.loop.adopt(self._fitting.result())
        self._fitting = None
        self.logger.record("reward_model/val_accuracy", stats.val_accuracy)
        self.logger.record("reward_model/val_loss", stats.val_loss)
        self.logger.record("reward_model/train_loss", stats.train_loss)
        self.logger.record("reward_model/train_accuracy", stats.train_accuracy)
        self.logger.record("reward_model/epochs", stats.epochs)
        self._lap("fit")

    def _fresh_pairs(self) -> tuple[list[Clip], np.ndarray]:
        """The policy's most recent clips and random pairs of them, for :meth:`_check`."""
        pool = self.loop.recorder.clips
        clips = [pool[i] for i in range(max(0, len(pool) - self.check_clips), len(pool))]
        if len(clips) < 2:
            return clips, np.zeros((0, 2), np.int64)
        pairs = self._check_rng.integers(0, len(clips), size=(4 * len(clips), 2))
        return clips, pairs[pairs[:, 0] != pairs[:, 1]]

    def _check(self, fresh: tuple[list[Clip], np.ndarray], learned: np.ndarray, record: StepRecord) -> RewardCheck:
        clips, pairs = fresh
        check = check_reward(self.loop.learned_rewards, clips, pairs, learned, record.true_rewards)
        self._lap("check")
        return check

    def _new_labels(self, due: int, final: bool) -> bool:
        """Ask what the schedule has due; returns whether labels arrived that call for a refit.

        A synthetic teacher answers at once, a batch at a time. People label at their own pace:
        a refit starts once a batch of new labels has arrived (PPO goes on with the current
        ensemble meanwhile), and the queries due are asked, at most two batches waiting."""
        if self.loop.teacher is not None:
            if due >= self.label_batch or (due > 0 and final):
                self._add_probe_clips()
                arrived = self.loop.ask(due) > 0
                self._lap("ask")
                return arrived
            return False
        new = self.loop.store.num_labels() - self.loop.fitted_labels
        room = 2 * self.label_batch - self.loop.store.num_pending()
        if (due >= self.label_batch or (due > 0 and final)) and room > 0:
            self._add_probe_clips()
            self.loop.ask(min(due, room))
        self._lap("ask")
        return new >= self.label_batch or (final and new > 0)

    def _add_probe_clips(self) -> None:
        if self.probe is not None:
            self.loop.recorder.clips.extend(self.probe(self.model, self.num_timesteps))
            self._lap("probe")

    def _on_training_end(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
        if self._fitting is not None:  # every label is in the saved ensemble
            self.loop.adopt(self._fitting.result())
            self._fitting = None
        if self._fitter is not None:
            self._fitter.shutdown()

    def _lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self._clock
        self._clock = now

    def _on_rollout_end(self) -> None:
        self._clock = time.perf_counter()
        record = self.venv.drain()
        # Wait for the background scores before asking or refitting touches the ensemble.
        scored = [f.result() for f in self._scored]
        self._scored, self._submitted = [], 0
        if record is None:
            return
        self.loop.collect(record, self.num_timesteps)
        self._lap("collect")
        due = self.schedule.target(self.num_timesteps) - self.loop.asked
        final = self.num_timesteps + self.model.n_steps * self.venv.num_envs > self.schedule.total_timesteps
        # The reward this rollout gets from the ensemble as it is; replaced if the ensemble is refit.
        learned = self._rollout_rewards(record, scored, refit=False)
        self._lap("relabel")
        start = self._new_labels(due, final)
        # A refit under way is adopted when its delay is up, at the last rollout, or when a new one
        # must start; without a delay (and at the last rollout), a new fit is adopted as it ends.
        adopt = self._fitting is not None and (self.num_timesteps >= self._adopt_at or final or start)
        adopt_new = start and (self._fitter is None or final)  # the last rollout waits for its refit
        refit = adopt or adopt_new
        fresh = self._fresh_pairs() if self.check_clips and refit else None
        before = self._check(fresh, learned, record) if fresh else None
        if adopt:
            self._adopt()
        if start:
            self._start_fit()
            if adopt_new:
                self._adopt()
        self.rollout = {"true_reward": float(record.true_rewards.mean()), "refit": float(refit)}
        if refit:
            learned = self._rollout_rewards(record, [], refit=True)
            self._lap("relabel")
            if fresh:
                after = self._check(fresh, learned, record)
                for name, check in (("before", before), ("after", after)):
                    for key, value in check.as_dict().items():
                        self.logger.record(f"diagnostics/{key}_{name}", value)
                        self.rollout[f"{key}_{name}"] = value
        self.rollout["learned_reward"] = float(learned.mean())
        weight = 1.0 - self.num_timesteps / self.explore_steps if self.explore_steps else 0.0
        if weight > 0:
            novelty = knn_novelty(record.obs.reshape(-1, *record.obs.shape[2:]), seed=self.num_timesteps)
            learned = learned + weight * self.loop.model.config.reward_std * novelty.reshape(learned.shape)
            self.logger.record("prefrl/novelty_weight", weight)
        relabel_rollout(self.model.rollout_buffer, learned, self.locals["values"], self.locals["dones"])
        self._lap("relabel")
        for t in range(len(learned)):
            self._learned_return += learned[t]
            for i in np.flatnonzero(record.dones[t]):
                self.learned_episode_returns.append(float(self._learned_return[i]))
                self._learned_return[i] = 0.0
        self.logger.record("prefrl/labels", self.loop.store.num_labels())
        if self.learned_episode_returns:
            self.logger.record("prefrl/learned_episode_return", float(np.mean(self.learned_episode_returns[-20:])))
        if self.on_update is not None:
            self.on_update(self)
        self._lap("log")
