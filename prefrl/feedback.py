"""Feedback: who answers the queries, and when the answers call for a refit.

Two implementations of one interface, both passed into the loop:

- :class:`SyntheticFeedback`: a teacher that reads the hidden score answers each batch of queries at
  once; its labels go straight into the labeled data (and into the store, for the record).
- :class:`HumanFeedback`: queries wait in the store for people (``prefrl label``); the labeled data
  follows the store as answers arrive, RL waits only for the initial labels, and at most two batches
  of queries wait unanswered at a time.
"""

from __future__ import annotations

import time
from typing import Protocol

from .errors import PrefrlError, TrainingError
from .labeled_data import LabeledData
from .queries import Query, QueryKind
from .store import PreferenceStore

__all__ = ["Feedback", "SyntheticFeedback", "HumanFeedback"]


class Feedback(Protocol):
    """Answers queries and says when the answers call for a refit of the reward model.

    ``source`` is stored with each query. Each rollout, the loop asks ``to_ask(due, final)`` queries
    (``due``: what the label schedule has due; ``final``: the run's last rollout), hands them to
    ``__call__`` (which puts whatever labels there are into the labeled data) and starts a refit if
    ``refit_due(asked, new, final)``. Before RL, ``before_rl`` returns once the initial labels are in.
    """

    source: str
    label_batch: int

    def to_ask(self, due: int, final: bool) -> int: ...

    def __call__(self, queries: list[Query]) -> None: ...

    def refit_due(self, asked: int, new: int, final: bool) -> bool: ...

    def before_rl(self, asked: int) -> None: ...


def _batch_due(due: int, batch: int, final: bool) -> bool:
    """A batch of labels is due, or the last few of the run."""
    return due >= batch or (due > 0 and final)


class SyntheticFeedback:
    """A synthetic teacher answers at once, ``label_batch`` labels at a time (fewer in the last rollout).

    Args:
        teacher: an :class:`~prefrl.teachers.OracleTeacher` or :class:`~prefrl.teachers.SimulatedTeacher`.
        kind: pairs or rankings.
        store: where answers are recorded.
        data: where labels go for the reward model.
        label_batch: fewest labels asked at once after the initial ones.
    """

    def __init__(self, teacher, kind: QueryKind, store: PreferenceStore, data: LabeledData, label_batch: int):
        self.teacher = teacher
        self.kind = kind
        self.store = store
        self.data = data
        self.label_batch = label_batch
        self.source = teacher.name

    def to_ask(self, due: int, final: bool) -> int:
        return due if _batch_due(due, self.label_batch, final) else 0

    def __call__(self, queries: list[Query]) -> None:
        if queries:
            self.data.add(self.kind.answer(self.teacher, queries, self.store),
                          [c for q in queries for c in q.clips])

    def refit_due(self, asked: int, new: int, final: bool) -> bool:
        return asked > 0

    def before_rl(self, asked: int) -> None:
        if self.data.n < 2:
            raise TrainingError(f"the teacher labeled {self.data.n} of the {asked} initial queries (it skipped the "
                                f"rest): the reward model needs at least 2 labels to start; lower the teacher's skip "
                                f"threshold or ask more --initial-labels")


class HumanFeedback:
    """People answer in the labeling window, at their own pace.

    A refit starts once ``label_batch`` new labels have arrived (PPO goes on with the current
    ensemble meanwhile); the queries due are asked with at most two batches waiting unanswered.

    Args:
        store: where queries wait and answers arrive.
        data: follows the store's labels (:meth:`LabeledData.sync`).
        label_batch: new labels that call for a refit; a batch of queries.
        poll: seconds between looks at the store while waiting for the initial labels.
    """

    source = "human"

    def __init__(self, store: PreferenceStore, data: LabeledData, label_batch: int, poll: float = 0.5):
        self.store = store
        self.data = data
        self.label_batch = label_batch
        self.poll = poll

    def to_ask(self, due: int, final: bool) -> int:
        room = 2 * self.label_batch - self.store.num_pending()
        return min(due, room) if _batch_due(due, self.label_batch, final) and room > 0 else 0

    def __call__(self, queries: list[Query]) -> None:
        self.data.sync()  # the queries just asked wait for people; answers to earlier ones come in

    def refit_due(self, asked: int, new: int, final: bool) -> bool:
        return new >= self.label_batch or (final and new > 0)

    def before_rl(self, asked: int) -> None:
        """Block until people have answered every waiting query and at least two are labels."""
        store = self.store
        print(f"prefrl: waiting for {store.num_pending()} labels before RL starts. In another terminal run:\n"
              f"    prefrl label {store.label_target}\n"
              f"(several windows may label at once; Ctrl-C stops, and every label given is kept)", flush=True)
        while store.num_pending() > 0 or store.num_labels() < 2:
            if store.num_pending() == 0:  # all answered, but too few were labels (skips)
                raise PrefrlError(f"only {store.num_labels()} of the initial queries were labeled (the rest skipped): "
                                  f"at least 2 labels are needed; rerun with a new --run-dir")
            time.sleep(self.poll)
        self.data.sync()
        print(f"prefrl: {store.num_labels()} labels in; pre-training the reward model and starting RL", flush=True)
