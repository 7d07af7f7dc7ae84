"""The fitter: refits the reward-model ensemble on the labeled data, in place or in the background,
and makes the refit ensemble the live one (the one the agent's reward and query selection read).

Two implementations of one interface: :class:`Fitter` (refit in place, or in the background with
the switch on a fixed step, so a run repeats exactly) and :class:`AsyncFitter` (a worker refits
whenever new labels have come and the agent takes the newest refit without ever waiting, as the
paper's reward model trained asynchronously; when the switch falls depends on the machine).
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import torch

from .labeled_data import LabeledData
from .queries import Label
from .reward_model import RewardEnsemble
from .reward_training import EnsembleTrainer, TrainStats

__all__ = ["Fitter", "AsyncFitter", "half_the_threads", "lowest_priority"]


def half_the_threads(agent_threads: int) -> None:
    """Called in a background thread on a CPU: torch runs its operations there on half the agent's
    ``agent_threads`` intra-op threads (at least one; read in the agent's thread). Each thread keeps
    the count it started with, so the agent's own thread keeps them all; without this each
    background thread brings a team of as many threads as there are cores, and on 2 cores the
    agent's update and the reward CNN then run 4 threads on 2 cores. (torch also takes the count as
    the default of threads that have not yet run an operation.)"""
    torch.set_num_threads(max(1, agent_threads // 2))


def lowest_priority() -> None:
    """The calling thread runs at the lowest CPU priority (nice 19; Linux schedules threads one by
    one), where the system allows it; elsewhere at the priority it had."""
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:  # not allowed here
            pass


class _Share:
    """Which labels a refit trains on: every one held, or (``new_only``) the new ones and as many
    older ones drawn at random, so that a refit costs in proportion to the labels that came and not
    to all there are (:meth:`LabeledData.split_new`). A fit that waits (before RL, on resume) always
    takes every label."""

    def __init__(self, data: LabeledData, trainer: EnsembleTrainer, new_only: bool, seed: int):
        self.data = data
        self.trainer = trainer
        self.new_only = new_only
        self.rng = np.random.default_rng(seed)
        self.fitted: frozenset[Label] = frozenset()

    def job(self, every: bool = False, epochs: int | None = None,
            between_steps: Callable[[], object] | None = None) -> Callable[[], TrainStats]:
        """The refit on the labels held now (read here), as a call to make now or in another thread;
        the labels count as fitted once it has run."""
        if not self.new_only:
            train, val = self.data.split()
            scale_on, held = None, None
        else:
            train, val, scale_on, held = self.data.split_new(frozenset() if every else self.fitted, self.rng,
                                                             least=self.trainer.batch_size)

        def run() -> TrainStats:
            stats = self.trainer.train(train, val, epochs=epochs, between_steps=between_steps, scale_on=scale_on)
            if held is not None:
                self.fitted = held
            return stats

        return run

    def on_every_label(self, stats: TrainStats | None) -> TrainStats | None:
        """The last refit's stats, with validation measured on every held-out label when the refit
        trained on a share of them (then it was measured on that share only, which says little
        of the saved ensemble)."""
        if stats is None or not self.new_only:
            return stats
        train, val = self.data.split()
        val_loss, val_accuracy = self.trainer.evaluate(val)
        return replace(stats, val_loss=val_loss, val_accuracy=val_accuracy, n_train=train.n, n_val=val.n)


class Fitter:
    """Fits ``trainer.model`` to ``data`` and adopts it into ``live``.

    Args:
        trainer: fits its model; with ``delay`` > 0 that must be a copy of ``live``, so the agent and
            query selection go on with the live ensemble while a refit runs.
        live: the ensemble the learned reward reads.
        data: the labels.
        delay: refit in a background thread and adopt the refit ensemble at the first rollout end at
            least this many env steps after the fit began (0: refit in place while the agent waits).
            A fit slower than that is waited for, so the switch falls on the same step however busy
            the machine is, and a run repeats exactly. The paper's reward model trained
            asynchronously.
        save: called with the live ensemble after each adoption (writes ``reward_model.pt``).
        new_only: each refit trains on the new labels and as many older ones drawn at random, not
            on every label (see :class:`_Share`); ``seed`` draws them.
    """

    def __init__(self, trainer: EnsembleTrainer, live: RewardEnsemble, data: LabeledData, delay: int = 0,
                 save: Callable[[RewardEnsemble], None] | None = None, new_only: bool = False, seed: int = 0):
        if delay and trainer.model is live:
            raise ValueError("Fitter: delay > 0 needs a trainer that trains a copy of the live ensemble "
                             "(EnsembleTrainer(copy.deepcopy(model)))")
        self.trainer = trainer
        self.live = live
        self.data = data
        self.delay = delay
        self.save = save
        self.share = _Share(data, trainer, new_only, seed)
        self.fitted_labels = 0  # labels held at the start of the last fit
        self.last_stats: TrainStats | None = None
        self.seconds: dict[str, float] = {}  # no worker of its own to time: the callback's ``fit`` stage is its time
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="prefrl-fit") if delay else None
        self._fitting: Future | None = None  # the refit under way in the background
        self._adopt_at = 0  # the env step from which the refit under way is adopted

    def _job(self, every: bool = False, epochs: int | None = None) -> Callable[[], TrainStats]:
        """The refit on the labels held now (read here), as a call to make now or in another thread."""
        self.fitted_labels = self.data.n
        return self.share.job(every=every, epochs=epochs)

    def _adopt(self, stats: TrainStats) -> TrainStats:
        if self.trainer.model is not self.live:
            self.live.load_state_dict(self.trainer.model.state_dict())
        self.live.version += 1
        self.last_stats = stats
        if self.save is not None:
            self.save(self.live)
        return stats

    def fit(self, epochs: int | None = None) -> TrainStats:
        """Refit on every label now and adopt it, waiting for it (before RL, and on resume)."""
        return self._adopt(self._job(every=True, epochs=epochs)())

    def will_adopt(self, timestep: int, start: bool, final: bool) -> bool:
        """Whether :meth:`step` with these arguments changes the live ensemble."""
        return (self._fitting is not None and (timestep >= self._adopt_at or final or start)) or (
            start and (self._executor is None or final))

    def step(self, timestep: int, start: bool, final: bool) -> TrainStats | None:
        """At a rollout's end: adopt the refit under way once its delay is up (or at the last rollout,
        or when a new one must start), then start a new refit if ``start``; without a delay, and at
        the last rollout, the new refit is adopted as it ends. Returns the stats of the last refit
        adopted here (None if none was)."""
        adopted = None
        if self._fitting is not None and (timestep >= self._adopt_at or final or start):
            adopted = self._adopt(self._fitting.result())
            self._fitting = None
        if start:
            job = self._job()
            if self._executor is None or final:  # the last rollout waits for its refit
                adopted = self._adopt(job())
            else:
                self._fitting = self._executor.submit(job)
                self._adopt_at = timestep + self.delay
        return adopted

    def pause(self) -> None:
        """The agent's update starts (a refit under way in the background goes on)."""

    def resume(self) -> None:
        """The agent collects a rollout again."""

    def close(self) -> None:
        """Adopt a refit still under way (every label is then in the saved ensemble) and stop the thread."""
        if self._fitting is not None:
            self._adopt(self._fitting.result())
            self._fitting = None
        if self._executor is not None:
            self._executor.shutdown()
        self.last_stats = self.share.on_every_label(self.last_stats)


class AsyncFitter:
    """Refits ``trainer.model`` (a copy of ``live``) in a worker thread, on every label held each time
    new ones have come; at a rollout's end the agent takes the newest finished refit, never waiting
    for one under way. Only :meth:`close`, after the agent's last update, waits, so that the saved
    ensemble has seen every label.

    With ``yield_to_agent`` the worker keeps off the agent's way on a CPU: its thread runs at the
    lowest scheduling priority (Linux), and between gradient steps it waits while the agent's own
    update runs (:meth:`pause` from a rollout's end, :meth:`resume` at the next rollout's start), so
    it trains on the cycles collecting a rollout leaves idle (Atari: the envs step on one core while
    the other waits). Where the agent's update is most of its time (a small MLP policy) the worker
    would then hardly train. On a CPU the worker runs torch on half the agent's threads (see
    :func:`half_the_threads`). Queries handed over with :meth:`ask` are picked and answered in the
    worker too, before its next refit.

    Args:
        trainer: fits its model, which must be a copy of ``live``.
        live: the ensemble the learned reward reads.
        data: the labels (read by the worker under the data's lock).
        save: called with the live ensemble after each adoption (writes ``reward_model.pt``).
        yield_to_agent: see above.
        new_only, seed: as :class:`Fitter`'s.
    """

    def __init__(self, trainer: EnsembleTrainer, live: RewardEnsemble, data: LabeledData,
                 save: Callable[[RewardEnsemble], None] | None = None, yield_to_agent: bool = False,
                 new_only: bool = False, seed: int = 0):
        if trainer.model is live:
            raise ValueError("AsyncFitter: needs a trainer that trains a copy of the live ensemble "
                             "(EnsembleTrainer(copy.deepcopy(model)))")
        self.trainer = trainer
        self.live = live
        self.data = data
        self.save = save
        self.yield_to_agent = yield_to_agent
        self.share = _Share(data, trainer, new_only, seed)
        self.fitted_labels = 0  # labels held when the last refit was asked for
        self.last_stats: TrainStats | None = None
        self.refits = 0  # refits the worker finished
        self._state = threading.Condition()
        self._asked = self._done = 0  # refits asked for, and finished, so far
        self._asks: list[Callable[[], object]] = []  # queries handed over, to pick and answer before the next refit
        self._published: tuple[dict, TrainStats] | None = None  # the newest finished refit not yet adopted
        self._ready: tuple[dict, TrainStats] | None = None  # what will_adopt saw
        self._error: BaseException | None = None
        self._stopping = False
        self._open = threading.Event()  # clear while the agent's update runs: the worker waits between steps
        self._open.set()
        self._paused_at: float | None = None  # when the agent's update began (perf_counter), while it runs
        self._last_step_at = 0.0  # when the worker last started a step of work (perf_counter)
        # The worker's wall seconds: ``ask`` picking and answering queries, ``fit`` refitting (the
        # waits included), ``held`` waiting while the agent updated, ``overlap`` computing while it
        # updated (a step under way when the update began runs on: that competes with the agent).
        self.seconds: dict[str, float] = defaultdict(float)
        self._cpu = 0.0  # the worker thread's CPU seconds (time.thread_time) at its last gate or job's end
        self._agent_threads = torch.get_num_threads()
        self._worker = threading.Thread(target=self._work, name="prefrl-fit", daemon=True)
        self._worker.start()

    def cpu_seconds(self) -> float:
        """The CPU seconds the worker's thread has used, as of its last gate (before each gradient
        step or chunk) or the end of its last job: read by the worker itself, in its own thread.
        torch's operations are in it when they run on one intra-op thread, as the worker's do on
        2 cores; with more, the helper threads' share is not."""
        return self._cpu

    def pause(self) -> None:
        """The agent's update starts: with ``yield_to_agent`` the worker waits at its next gradient step."""
        self._paused_at = time.perf_counter()
        if self.yield_to_agent:
            self._open.clear()

    def resume(self) -> None:
        """The agent collects a rollout again (its envs leave a core idle): the worker goes on."""
        self._paused_at = None
        self._open.set()

    def _between_steps(self) -> None:
        """Before each gradient step, each chunk of a pass over clips and each round of queries:
        count how long the worker has computed into the agent's update, then wait while it runs
        (with ``yield_to_agent``)."""
        self._cpu = time.thread_time()
        paused_at, now = self._paused_at, time.perf_counter()
        if paused_at is not None:
            self.seconds["overlap"] += now - max(paused_at, self._last_step_at)
        if not self._open.is_set():
            self._open.wait()
            self.seconds["held"] += time.perf_counter() - now
        self._last_step_at = time.perf_counter()

    def ask(self, job: Callable[[], object]) -> None:
        """Hand over picking and answering queries (``job``) to the worker: it runs before the refit
        the next :meth:`step` with ``start`` asks for."""
        with self._state:
            self._asks.append(job)

    def _work(self) -> None:
        if self.yield_to_agent:
            lowest_priority()
        if self.live.out_mean.device.type == "cpu":
            half_the_threads(self._agent_threads)
        while True:
            with self._state:
                self._state.wait_for(lambda: self._asked > self._done or self._stopping)
                if self._stopping and self._asked == self._done:
                    return
                asked, asks, self._asks = self._asked, self._asks, []
            self._last_step_at = time.perf_counter()
            try:
                for job in asks:
                    self._between_steps()
                    began = time.perf_counter()
                    job()
                    self.seconds["ask"] += time.perf_counter() - began
                self.fitted_labels = self.data.n
                began = time.perf_counter()
                stats = self.share.job(between_steps=self._between_steps)()
                self.seconds["fit"] += time.perf_counter() - began
                state = {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()}
                self._cpu = time.thread_time()
            except BaseException as exc:  # raised again in the agent's thread by step()
                with self._state:
                    self._error, self._done = exc, self._asked
                    self._state.notify_all()
                return
            with self._state:
                self._published, self._done = (state, stats), asked
                self.refits += 1
                self._state.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def fit(self, epochs: int | None = None) -> TrainStats:
        """Refit on every label now and adopt it, waiting for it (before RL, and on resume; the
        worker is idle then)."""
        self.fitted_labels = self.data.n
        stats = self.share.job(every=True, epochs=epochs)()
        return self._adopt(self.trainer.model.state_dict(), stats)

    def _adopt(self, state: dict, stats: TrainStats) -> TrainStats:
        self.live.load_state_dict(state)
        self.live.version += 1
        self.last_stats = stats
        if self.save is not None:
            self.save(self.live)
        return stats

    def will_adopt(self, timestep: int, start: bool, final: bool) -> bool:
        """Whether :meth:`step` changes the live ensemble: a refit has finished since the last
        adoption."""
        with self._state:
            self._ready = self._published
            return self._ready is not None

    def step(self, timestep: int, start: bool, final: bool) -> TrainStats | None:
        """Adopt the refit :meth:`will_adopt` saw finished, if any, and ask for a new refit if
        ``start``; never waits, at the last rollout either (the refit on the last labels serves the
        saved ensemble, not the agent: :meth:`close` waits for it). Returns the stats of the refit
        adopted (None if none was)."""
        self._raise()
        if start:
            with self._state:
                if not self._asks:
                    self.fitted_labels = self.data.n
                self._asked += 1
                self._state.notify_all()
        with self._state:
            ready, self._ready = self._ready, None
            if ready is not None and self._published is ready:
                self._published = None
        self._raise()
        return self._adopt(*ready) if ready is not None else None

    def close(self) -> None:
        """Wait for every refit asked (and every query handed over), adopt the newest (every label
        is then in the saved ensemble) and stop the worker."""
        self._open.set()
        with self._state:
            self._state.wait_for(lambda: self._done >= self._asked)
            ready, self._published = self._published, None
            self._stopping = True
            self._state.notify_all()
        self._worker.join()
        self._raise()
        if ready is not None:
            self._adopt(*ready)
        self.last_stats = self.share.on_every_label(self.last_stats)
