"""The labeling session: which query is on screen and what each answer does to the store.

A query is a pair of clips (a :class:`~prefrl.store.Comparison`) or K clips to rank (a
:class:`~prefrl.store.Ranking`, K-wise feedback for the Plackett–Luce loss). No pygame here: the
app turns key presses into :data:`ACTIONS` and draws what the session holds, so everything a key
does can be tested without a screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from prefrl.clips import Clip
from prefrl.store import Comparison, DamagedClipError, PreferenceStore, Ranking

from .frames import clip_frames

__all__ = ["ACTIONS", "MAX_RANK", "PICKS", "PREFERENCE", "LabelingSession"]

# What each answer to a pair stores: the probability that the left clip is better; None is "can't
# tell" (recorded as skipped, never trained on).
PREFERENCE = {"left": 1.0, "right": 0.0, "equal": 0.5, "skip": None}
MAX_RANK = 4  # clips side by side in one window
# A ranking is given best first: pick<k> takes the clip shown k-th as the best of those not yet
# placed; once one clip is left, it goes last and the ranking is stored.
PICKS = tuple(f"pick{k}" for k in range(1, MAX_RANK + 1))
ACTIONS = (*PREFERENCE, *PICKS, "undo", "pause", "quit")


@dataclass
class LabelingSession:
    """One labeler on one store.

    Each answer is committed to the store before the next query is shown, so quitting or a crash
    loses nothing already given. Queries are claimed (:meth:`PreferenceStore.claim`,
    :meth:`PreferenceStore.claim_ranking`), so several sessions on one store are never shown the
    same one; pairs waiting come before rankings. When no query is waiting and ``new_pairs`` is
    on (a saved run with no trainer), ``rank_size`` stored clips not yet queried together are
    queried and shown.

    Attributes:
        store: the run's store.
        labeler: the name stored with each label.
        env: the env name, to render classic-control clips.
        new_pairs: query new pairs (or groups) of stored clips when none are waiting.
        rank_size: clips in each new query: 2 (a pair) up to :data:`MAX_RANK` (a ranking).
    """

    store: PreferenceStore
    labeler: str
    env: str
    new_pairs: bool = False
    seed: int = 0
    rank_size: int = 2
    current: Comparison | Ranking | None = None
    clips: tuple[Clip, ...] | None = None  # the clips on screen, as stored, in the order shown
    frames: tuple[np.ndarray, ...] | None = None
    order: list[int] = field(default_factory=list)  # a ranking in progress: positions picked, best first
    paused: bool = False
    done: bool = False
    history: list[Comparison | Ranking] = field(default_factory=list)  # queries answered, in order
    took: list[float] = field(default_factory=list)  # how long each answer in history took (s, monotonic clock)
    answers: list[str] = field(default_factory=list)  # each answer in history: left, right, equal, rank or skip
    # queries passed over because a clip of theirs cannot be read back (damaged in the store), with why
    damaged: list[tuple[Comparison | Ranking, DamagedClipError]] = field(default_factory=list)
    on_damaged: Callable[[DamagedClipError], None] | None = None  # told of each, as it is passed over

    started: float = field(default_factory=time.time)

    def __post_init__(self):
        if not 2 <= self.rank_size <= MAX_RANK:
            raise ValueError(f"rank_size {self.rank_size} must be 2 to {MAX_RANK}: that many clips fit side by side")
        self.rng = np.random.default_rng(self.seed)
        self._waiting, self._waiting_at = 0, -float("inf")
        self.advance()

    # state the app reads
    @property
    def labeled(self) -> int:
        """Answers given this session (skips included), less those undone."""
        return len(self.history)

    @property
    def ranking(self) -> bool:
        """Whether the query on screen is a ranking."""
        return isinstance(self.current, Ranking)

    @property
    def key(self) -> tuple[str, int] | None:
        """Which query is on screen (comparison and ranking ids are separate)."""
        return None if self.current is None else (type(self.current).__name__, self.current.id)

    def labels_per_minute(self) -> float:
        return self.labeled / max(1e-9, (time.time() - self.started) / 60.0)

    def waiting(self) -> int:
        """Queries in the store waiting for an answer (this one included); read from the store at
        most once a second, since the window asks every frame."""
        now = time.monotonic()
        if now - self._waiting_at > 1.0:
            self._waiting, self._waiting_at = self.store.num_pending(), now
        return self._waiting

    # what keys do
    def apply(self, action: str) -> None:
        """Carry out one of :data:`ACTIONS` (an answer that does not fit the query on screen, such
        as Left on a ranking or a pick of a clip not shown, does nothing)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown labeling action {action!r}: use one of {', '.join(ACTIONS)}")
        if action == "quit":
            self.quit()
        elif action == "pause":
            self.paused = not self.paused
        elif action == "undo":
            self.undo()
        elif self.current is None:
            return
        elif action == "skip":
            self._answer("skip")
        elif self.ranking and action in PICKS:
            picked = PICKS.index(action)
            if picked < len(self.current.clip_ids) and picked not in self.order:
                self.order.append(picked)
                if len(self.order) == len(self.current.clip_ids) - 1:  # the last one left goes last
                    self.order.extend(set(range(len(self.current.clip_ids))) - set(self.order))
                    self._answer("rank")
        elif not self.ranking and action in PREFERENCE:
            self._answer(action)

    def _answer(self, action: str) -> None:
        if self.ranking:
            self.store.record_rankings([(self.current.id, None if action == "skip" else list(self.order))],
                                       labeler=self.labeler)
        else:
            self.store.record_labels([(self.current.id, PREFERENCE[action])], labeler=self.labeler)
        self.history.append(self.current)
        self.took.append(time.monotonic() - self._shown_at)
        self.answers.append(action)
        self.advance()

    def undo(self) -> None:
        """Take back the last pick of a ranking in progress; else this session's last answer, and
        show that query again."""
        if self.order:
            self.order.pop()
            return
        if not self.history:
            return
        previous = self.history.pop()
        self.took.pop()
        self.answers.pop()
        self._release_current()
        if isinstance(previous, Ranking):
            self.store.unlabel_ranking(previous.id, self.labeler)
            self._show(self.store.ranking(previous.id))
        else:
            self.store.unlabel(previous.id, self.labeler)
            self._show(self.store.comparison(previous.id))

    def advance(self) -> None:
        """Show the next waiting query (or a new one, see ``new_pairs``); None when there is none.
        A query whose clips cannot be read back is released, passed over for the rest of the session
        and reported in :attr:`damaged` (its clip id and why); the next one is shown."""
        while True:
            query = self._claim()
            if query is None and self.new_pairs:
                group = self._new_group()
                if group is not None:
                    if len(group) == 2:
                        self.store.add_queries([group], source="ui")
                    else:
                        self.store.add_ranking_queries([group], source="ui")
                    query = self._claim()
            try:
                self._show(query)
                return
            except DamagedClipError as exc:
                self._release_current()
                self.damaged.append((self.current, exc))
                self.current = None
                if self.on_damaged is not None:
                    self.on_damaged(exc)
            except BaseException:  # a query that cannot be shown at all is not left claimed
                self._release_current()
                self.current = None
                raise

    def _claim(self) -> Comparison | Ranking | None:
        """Claim the next waiting pair, else ranking, passing over those found damaged."""
        pairs = {q.id for q, _ in self.damaged if isinstance(q, Comparison)}
        rankings = {q.id for q, _ in self.damaged if isinstance(q, Ranking)}
        return self.store.claim(self.labeler, exclude=pairs) or self.store.claim_ranking(self.labeler, exclude=rankings)

    def poll(self) -> None:
        """Look for a new query when none is on screen (a trainer may have added some)."""
        if self.current is None and not self.done:
            self.advance()

    def quit(self) -> None:
        self._release_current()
        self.current = self.clips = self.frames = None
        self.order = []
        self.done = True

    def restart_clock(self) -> None:
        """Time the query on screen from now (the window calls this when its help screen closes)."""
        self._shown_at = time.monotonic()

    def summary(self) -> str:
        """One line on the session: answers, skips, minutes and the median seconds an answer took."""
        skips = self.answers.count("skip")
        minutes = (time.time() - self.started) / 60.0
        median = f", median {np.median(self.took):.1f} s an answer" if self.took else ""
        n = self.labeled
        return (f"{n} answer{'s' if n != 1 else ''} from {self.labeler} ({skips} can't-tell) in {minutes:.1f} min"
                f"{median}; every one is in {self.store.path}")

    def _release_current(self) -> None:
        if isinstance(self.current, Ranking):
            self.store.release_ranking(self.current.id, self.labeler)
        elif self.current is not None:
            self.store.release(self.current.id, self.labeler)

    def _show(self, query: Comparison | Ranking | None) -> None:
        self._shown_at = time.monotonic()
        self.current = query
        self.order = []
        if query is None:
            self.clips = self.frames = None
            return
        ids = list(query.clip_ids) if isinstance(query, Ranking) else [query.left_id, query.right_id]
        self.clips = tuple(self.store.get_clips(ids, frames=True))
        self.frames = tuple(clip_frames(c, self.env) for c in self.clips)

    def _new_group(self) -> tuple[int, ...] | None:
        broken = {exc.clip_id for _, exc in self.damaged}
        ids = [i for i in self.store.clip_ids() if i not in broken]
        if len(ids) < self.rank_size:
            return None
        asked = {frozenset((c.left_id, c.right_id)) for c in self.store.comparisons()}
        asked |= {frozenset(r.clip_ids) for r in self.store.rankings()}
        for _ in range(100):
            group = tuple(int(x) for x in self.rng.choice(ids, self.rank_size, replace=False))
            if frozenset(group) not in asked:
                return group
        return None
