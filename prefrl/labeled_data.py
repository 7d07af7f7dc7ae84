"""The labeled data the reward model trains on, held on the model's device.

A synthetic teacher's labels go straight in, with the clips they were asked on; labels people give
(and a resumed run's) are read from the store, their clips loaded once. Every labeled clip is held
once, as step features, however many labels it is in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import numpy as np
import torch

from .clips import Clip
from .errors import StoreError
from .queries import Label, QueryKind
from .reward_training import ComparisonBatch, RankingBatch, is_validation
from .store import PreferenceStore

__all__ = ["LabeledData"]

Batch = ComparisonBatch | RankingBatch


class LabeledData:
    """Labels and the step features of their clips, on ``device``.

    Args:
        kind: pairs or rankings (the batch type follows).
        features: steps -> step features (the learned reward's :meth:`~prefrl.reward_fn.LearnedReward.features`).
        store: where clips not yet held are loaded from.
        device: where the features are held (the reward model's).
        obs_shape, act_shape: one step's observation and action shape, to refuse clips of another env.
    """

    def __init__(self, kind: QueryKind, features: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 store: PreferenceStore, device: torch.device | str, obs_shape: tuple[int, ...],
                 act_shape: tuple[int, ...]):
        self.kind = kind
        self.features = features
        self.store = store
        self.device = torch.device(device)
        self.obs_shape, self.act_shape = tuple(obs_shape), tuple(act_shape)
        self._labels: dict[int, Label] = {}  # query id -> label
        self._rows: dict[int, int] = {}  # clip id -> row of self._clips
        self._clips: torch.Tensor | None = None  # step features of every labeled clip, once each
        # A fitter in another thread splits while the loop adds: the two take turns.
        self._lock = threading.RLock()

    @property
    def n(self) -> int:
        """Labels held."""
        return len(self._labels)

    def add(self, labels: Iterable[Label], clips: Iterable[Clip] = ()) -> None:
        """Hold these labels (a label of a query already held replaces it); ``clips`` are the clips
        they were asked on where the caller has them (others are loaded from the store)."""
        labels = list(labels)
        with self._lock:
            self._hold(list(clips), [i for label in labels for i in label.clip_ids])
            self._labels.update((label.id, label) for label in labels)

    def sync(self) -> None:
        """Hold exactly the labels in the store now: new answers added, changed ones replaced, taken
        back ones dropped (people label at their own pace and may undo)."""
        labels = self.kind.labels(self.store)
        with self._lock:
            self._labels = {}
            self.add(labels)

    def split(self) -> tuple[Batch, Batch]:
        """Every label held, in query order, split into training and validation (1/e held out,
        by a hash of the query id, so a label keeps its side from one fit to the next)."""
        batch, held_out, _ = self._everything()
        return self._sides(batch, held_out, np.ones(len(held_out), bool))

    def split_new(self, fitted: frozenset[Label], rng: np.random.Generator,
                  least: int = 16) -> tuple[Batch, Batch, tuple[Batch, Batch], frozenset[Label]]:
        """A refit's share of the labels: those not in ``fitted`` (new ones, and answers changed
        since) and as many others drawn at random (at least ``least``), each on its side of the
        split. Returns its training and validation labels, every label's (as :meth:`split`, to
        measure the output scale on), and the labels held now, which the caller passes as
        ``fitted`` once this refit is done."""
        batch, held_out, labels = self._everything()
        new = np.array([label not in fitted for label in labels], bool)
        old = np.flatnonzero(~new)
        chosen = new.copy()
        if len(old):
            chosen[rng.choice(old, min(len(old), max(int(new.sum()), least)), replace=False)] = True
        if not (chosen & ~held_out).any():  # nothing to train on: every label, as split() would
            chosen[:] = True
        return (*self._sides(batch, held_out, chosen), self._sides(batch, held_out, np.ones(len(labels), bool)),
                frozenset(labels))

    def _everything(self) -> tuple[Batch, np.ndarray, list[Label]]:
        """Every label held, in query order, as one batch; which are held out for validation; and
        the labels."""
        with self._lock:
            labels = [self._labels[i] for i in sorted(self._labels)]
            rows = dict(self._rows)
            clips = self._clips[:len(rows)] if self._clips is not None else None
        ids = np.array([label.id for label in labels])

        def index(clip_ids: list[int]) -> torch.Tensor:
            return torch.as_tensor([rows[i] for i in clip_ids], dtype=torch.long, device=self.device)

        if self.kind.size > 2:
            items = index([i for label in labels for i in label.clip_ids])
            batch = RankingBatch(items.reshape(len(labels), self.kind.size), clips)
        else:
            batch = ComparisonBatch(index([label.clip_ids[0] for label in labels]),
                                    index([label.clip_ids[1] for label in labels]),
                                    torch.as_tensor([label.value for label in labels], dtype=torch.float32,
                                                    device=self.device), clips)
        held_out = is_validation(ids)
        if held_out.all():  # a handful of labels, all on the validation side: train on them, validate on none
            held_out[:] = False
        return batch, held_out, labels

    def _sides(self, batch: Batch, held_out: np.ndarray, chosen: np.ndarray) -> tuple[Batch, Batch]:
        """The chosen labels of ``batch``, training side and validation side."""
        val = torch.as_tensor(np.flatnonzero(held_out & chosen), device=self.device, dtype=torch.long)
        train = torch.as_tensor(np.flatnonzero(~held_out & chosen), device=self.device, dtype=torch.long)
        return batch.subset(train), batch.subset(val)

    def _hold(self, given: list[Clip], clip_ids: list[int]) -> None:
        """Hold the features of these clips, from ``given`` where there, else from the store. The
        buffer grows by doubling, so holding more copies nothing already held."""
        by_id = {c.clip_id: c for c in given}
        missing = [i for i in dict.fromkeys(clip_ids) if i not in self._rows]
        if not missing:
            return
        stored = [i for i in missing if i not in by_id]
        loaded = {c.clip_id: c for c in self.store.get_clips(stored)} if stored else {}
        clips = [by_id.get(i) or loaded[i] for i in missing]
        for c in clips:
            if c.obs.shape[1:] != self.obs_shape or c.actions.shape[1:] != self.act_shape or len(c.actions) != len(c.obs):
                raise StoreError(
                    f"clip {c.clip_id} in {self.store.path} has observations {c.obs.shape[1:]} and actions "
                    f"{c.actions.shape[1:]} a step, but the env has {self.obs_shape} and {self.act_shape}: the store "
                    "was written for another env or version; use a new --run-dir")
        new = torch.as_tensor(np.stack([self.features(c.obs, c.actions) for c in clips]), device=self.device)
        held = len(self._rows)
        if self._clips is None or held + len(new) > len(self._clips):
            grown = torch.empty((max(2 * held, held + len(new)), *new.shape[1:]), dtype=new.dtype, device=self.device)
            if held:
                grown[:held] = self._clips[:held]
            self._clips = grown
        self._clips[held:held + len(new)] = new
        self._rows.update({clip_id: held + k for k, clip_id in enumerate(missing)})
