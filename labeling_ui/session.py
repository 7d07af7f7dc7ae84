"""The labeling session: which comparison is on screen and what each answer does to the store.

No pygame here: the app turns key presses into :data:`ACTIONS` and draws what the session holds, so
everything a key does can be tested without a screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from prefrl.clips import Clip
from prefrl.store import Comparison, PreferenceStore

from .frames import clip_frames

__all__ = ["ACTIONS", "PREFERENCE", "LabelingSession"]

# What each answer stores: the probability that the left clip is better; None is "can't tell"
# (recorded as skipped, never trained on).
PREFERENCE = {"left": 1.0, "right": 0.0, "equal": 0.5, "skip": None}
ACTIONS = (*PREFERENCE, "undo", "pause", "quit")


@dataclass
class LabelingSession:
    """One labeler on one store.

    Each answer is committed to the store before the next pair is shown, so quitting or a crash
    loses nothing already given. Comparisons are claimed (:meth:`PreferenceStore.claim`), so
    several sessions on one store are never shown the same pair. When no query is waiting and
    ``new_pairs`` is on (a saved run with no trainer), a random pair of stored clips not yet
    compared is queried and shown.

    Attributes:
        store: the run's store.
        labeler: the name stored with each label.
        env: the env name, to render classic-control clips.
        new_pairs: query new pairs of stored clips when none are waiting.
    """

    store: PreferenceStore
    labeler: str
    env: str
    new_pairs: bool = False
    seed: int = 0
    current: Comparison | None = None
    clips: tuple[Clip, Clip] | None = None  # the pair on screen, as stored
    frames: tuple[np.ndarray, np.ndarray] | None = None
    paused: bool = False
    done: bool = False
    history: list[int] = field(default_factory=list)  # comparisons answered this session, in order
    seconds: list[float] = field(default_factory=list)  # how long each answer in history took
    answers: list[str] = field(default_factory=list)  # each answer in history: left, right, equal or skip
    started: float = field(default_factory=time.time)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)
        self._waiting, self._waiting_at = 0, -float("inf")
        self.advance()

    # state the app reads
    @property
    def labeled(self) -> int:
        """Answers given this session (skips included), less those undone."""
        return len(self.history)

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
        """Carry out one of :data:`ACTIONS`."""
        if action not in ACTIONS:
            raise ValueError(f"unknown labeling action {action!r}: use one of {', '.join(ACTIONS)}")
        if action == "quit":
            self.quit()
        elif action == "pause":
            self.paused = not self.paused
        elif action == "undo":
            self.undo()
        elif self.current is not None:
            self.store.record_labels([(self.current.id, PREFERENCE[action])], labeler=self.labeler)
            self.history.append(self.current.id)
            self.seconds.append(time.monotonic() - self._shown_at)
            self.answers.append(action)
            self.advance()

    def undo(self) -> None:
        """Take back this session's last answer and show that pair again."""
        if not self.history:
            return
        previous = self.history.pop()
        self.seconds.pop()
        self.answers.pop()
        if self.current is not None:
            self.store.release(self.current.id, self.labeler)
        self.store.unlabel(previous, self.labeler)
        self._show(self.store.comparison(previous))

    def advance(self) -> None:
        """Show the next waiting comparison (or a new pair, see ``new_pairs``); None when there is none."""
        comparison = self.store.claim(self.labeler)
        if comparison is None and self.new_pairs:
            pair = self._new_pair()
            if pair is not None:
                self.store.add_queries([pair], source="ui")
                comparison = self.store.claim(self.labeler)
        self._show(comparison)

    def poll(self) -> None:
        """Look for a new query when none is on screen (a trainer may have added some)."""
        if self.current is None and not self.done:
            self.advance()

    def quit(self) -> None:
        if self.current is not None:
            self.store.release(self.current.id, self.labeler)
        self.current = self.clips = self.frames = None
        self.done = True

    def restart_clock(self) -> None:
        """Time the pair on screen from now (the window calls this when its help screen closes)."""
        self._shown_at = time.monotonic()

    def summary(self) -> str:
        """One line on the session: answers, skips, minutes and the median seconds an answer took."""
        skips = self.answers.count("skip")
        minutes = (time.time() - self.started) / 60.0
        median = f", median {np.median(self.seconds):.1f} s an answer" if self.seconds else ""
        n = self.labeled
        return (f"{n} answer{'s' if n != 1 else ''} from {self.labeler} ({skips} can't-tell) in {minutes:.1f} min{median}; "
                f"every one is in {self.store.path}")

    def _show(self, comparison: Comparison | None) -> None:
        self._shown_at = time.monotonic()
        self.current = comparison
        if comparison is None:
            self.clips = self.frames = None
            return
        left, right = self.store.get_clips([comparison.left_id, comparison.right_id], frames=True)
        self.clips = (left, right)
        self.frames = (clip_frames(left, self.env), clip_frames(right, self.env))

    def _new_pair(self) -> tuple[int, int] | None:
        ids = self.store.clip_ids()
        if len(ids) < 2:
            return None
        compared = {(c.left_id, c.right_id) for c in self.store.comparisons()}
        compared |= {(b, a) for a, b in compared}
        for _ in range(100):
            a, b = (int(x) for x in self.rng.choice(ids, 2, replace=False))
            if (a, b) not in compared:
                return a, b
        return None
