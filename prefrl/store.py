"""The preference store: clips and comparisons in one embedded SQLite file.

WAL mode lets a labeling process and the trainer share the file; every label is committed the
moment it is given. Arrays are stored as ``np.save`` bytes (``allow_pickle=False``), zlib-compressed:
nothing in the store is a pickle.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .clips import Clip, unpack_frames
from .errors import StoreError

__all__ = ["SCHEMA_VERSION", "Comparison", "DamagedClipError", "Ranking", "PreferenceStore"]

# 2: comparisons.claimed_by/claimed_at, so several labelers never get the same pair;
# 3: the rankings table (K-wise feedback);
# 4: rankings.claimed_by/claimed_at, so people rank in the window as they label pairs.
SCHEMA_VERSION = 4
APP_ID = "prefrl"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE clips (
    id INTEGER PRIMARY KEY,
    length INTEGER NOT NULL,
    true_return REAL NOT NULL,
    timestep INTEGER NOT NULL,
    obs BLOB NOT NULL,
    actions BLOB NOT NULL,
    true_rewards BLOB NOT NULL,
    frames BLOB,
    created REAL NOT NULL
);
CREATE TABLE comparisons (
    id INTEGER PRIMARY KEY,
    left_id INTEGER NOT NULL REFERENCES clips(id),
    right_id INTEGER NOT NULL REFERENCES clips(id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'labeled', 'skipped')),
    preference REAL CHECK (preference IN (0.0, 0.5, 1.0)),
    source TEXT NOT NULL,
    labeler TEXT,
    created REAL NOT NULL,
    labeled_at REAL,
    claimed_by TEXT,
    claimed_at REAL,
    CHECK ((status = 'labeled') = (preference IS NOT NULL))
);
CREATE INDEX comparisons_status ON comparisons(status);
CREATE TABLE rankings (
    id INTEGER PRIMARY KEY,
    clip_ids TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'labeled', 'skipped')),
    ranking TEXT,
    source TEXT NOT NULL,
    labeler TEXT,
    created REAL NOT NULL,
    labeled_at REAL,
    claimed_by TEXT,
    claimed_at REAL,
    CHECK ((status = 'labeled') = (ranking IS NOT NULL))
);
"""

_RANKINGS_TABLE = _SCHEMA[_SCHEMA.index("CREATE TABLE rankings"):]


def _pack(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return zlib.compress(buf.getvalue(), 1)


def _unpack(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)


def _clip_row(clip: Clip) -> tuple:
    """A clip's columns as both stores write them: length, true return, timestep and the packed arrays
    (obs, actions, true rewards, frames or None)."""
    frames = None if clip.frames is None else _pack(unpack_frames(clip.frames))
    return (int(clip.length), float(clip.true_return), int(clip.timestep), _pack(clip.obs), _pack(clip.actions),
            _pack(clip.true_rewards), frames)


def _clips_from_rows(where, ids: list[int], rows: dict, frames: bool) -> list[Clip]:
    """Clips ``ids``, in that order, from rows (id, obs, actions, true_rewards, timestep[, frames]) by id,
    as both stores read them: a missing id or bytes that do not inflate (a bad sector) are one line."""
    missing = [i for i in sorted(set(int(i) for i in ids)) if i not in rows]
    if missing:
        raise StoreError(f"{where} has no clips with ids {missing[:5]}: the store is damaged")
    out = []
    for i in ids:
        row = rows[int(i)]
        try:
            out.append(Clip(_unpack(row[1]), _unpack(row[2]), _unpack(row[3]),
                            _unpack(row[5]) if frames and row[5] is not None else None, row[4], row[0]))
        except (zlib.error, ValueError, OSError, EOFError) as exc:
            raise DamagedClipError(where, int(i), exc) from None
    return out


class DamagedClipError(StoreError):
    """A clip's stored bytes cannot be read back; ``clip_id`` says which."""

    def __init__(self, path: Path, clip_id: int, exc: BaseException):
        self.clip_id = clip_id
        super().__init__(f"{path}: clip {clip_id} is damaged ({type(exc).__name__}: {str(exc)[:80]}); the labels on "
                         "other clips are intact: restore the store from a backup to use this one")


@dataclass(frozen=True)
class Comparison:
    """A query between two stored clips and, once answered, its label.

    ``preference`` is the probability that the left clip is better: 1.0 left, 0.0 right, 0.5 equally
    good; None while pending or when skipped ("can't tell", never trained on).
    """

    id: int
    left_id: int
    right_id: int
    status: str
    preference: float | None
    source: str
    labeler: str | None


@dataclass(frozen=True)
class Ranking:
    """A query over K stored clips (K-wise feedback) and, once answered, its ranking.

    ``clip_ids`` are the clips in the order shown; ``ranking`` holds positions into ``clip_ids``,
    best first (None while pending or when skipped). A ranking counts as one label.
    """

    id: int
    clip_ids: tuple[int, ...]
    status: str
    ranking: tuple[int, ...] | None
    source: str
    labeler: str | None

    @property
    def ordered(self) -> tuple[int, ...]:
        """The clip ids best first (a labeled ranking)."""
        return tuple(self.clip_ids[i] for i in self.ranking)


class PreferenceStore:
    """One SQLite file holding a run's clips and comparisons.

    Args:
        path: the store file; created with the current schema if it does not exist.
        env: the env name recorded in a new store; a store of another env is refused.
        create: create the store if the file is missing or empty; with False such a file is refused
            (a labeling window must not create a store the trainer is about to).
        any_thread: the connection may be used from a thread other than the one that opened it (by
            one thread at a time: a worker that asks queries off the agent's path has its own).

    Raises:
        StoreError: the file is not a prefrl store, was written by a newer schema, or belongs
            to another env.
    """

    def __init__(self, path: str | Path, env: str | None = None, create: bool = True, any_thread: bool = False):
        self.path = Path(path)
        if not create and (not self.path.exists() or self.path.stat().st_size == 0):
            raise StoreError(f"{self.path} is not a prefrl store yet: start `prefrl train` first or give a run directory")
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=not any_thread)
            self._db.execute("PRAGMA busy_timeout = 30000")
            deadline = time.monotonic() + 30.0
            while True:
                try:
                    if create:
                        self._create(env)
                    self._check(env)
                    self._db.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    # Two processes opening a new store at once: switching it to WAL needs the file
                    # to itself, and SQLite answers "locked" at once rather than waiting.
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    time.sleep(0.05)
            # FULL: a label acknowledged to the user survives a power cut, not only a crash.
            self._db.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(self._unopened(exc)) from None

    def _unopened(self, exc: sqlite3.DatabaseError) -> str:
        """Why the store could not be opened, in one line: a read-only or full disk is said as such
        (the store is fine), anything else is a file that is not a readable store."""
        try:
            fs = os.statvfs(self.path.parent)
        except OSError:
            fs = None
        if fs is not None and fs.f_flag & os.ST_RDONLY:
            return (f"{self.path} is on a read-only file system ({exc}), and a store is opened for writing: copy the "
                    "run directory somewhere writable and give that")
        if fs is not None and fs.f_bavail == 0:
            return f"{self.path} cannot be opened: the disk is full ({exc}); free space and run the command again"
        return f"{self.path} is not a readable prefrl store ({exc}): move it away or give another run directory"

    def _create(self, env: str | None) -> None:
        """Write the schema into an empty database; one transaction, so of two processes opening a
        new store at once exactly one creates it. A database that holds anything is left alone."""
        with self._transaction():
            if self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                return
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("app", APP_ID), ("schema_version", str(SCHEMA_VERSION)), ("env", env or ""),
                 ("created", str(time.time()))],
            )
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check(self, env: str | None) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        meta = dict(self._db.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
        if meta.get("app") != APP_ID:
            raise StoreError(
                f"{self.path} is not a prefrl store (it has no prefrl metadata): move it away or give another run directory"
            )
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has store schema {version}, newer than this prefrl's {SCHEMA_VERSION}: "
                "upgrade prefrl or give another run directory"
            )
        if version < SCHEMA_VERSION:
            self._migrate(version)
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in ("clips", "comparisons", "rankings") if t not in tables]
        if missing:
            raise StoreError(f"{self.path} has lost its {', '.join(missing)} table{'s' if len(missing) > 1 else ''}: "
                             "the store is damaged and was left as it is; restore it from a backup")
        if env and meta.get("env") and meta["env"] != env:
            raise StoreError(f"{self.path} holds clips of env {meta['env']!r}, not {env!r}: give another run directory")
        self.env = meta.get("env") or env

    def _migrate(self, version: int) -> None:
        """Bring an older store up to this schema in one transaction (nothing in it is lost)."""
        with self._transaction():
            if version < 2:
                self._db.execute("ALTER TABLE comparisons ADD COLUMN claimed_by TEXT")
                self._db.execute("ALTER TABLE comparisons ADD COLUMN claimed_at REAL")
            if version < 3:
                self._db.execute(_RANKINGS_TABLE)  # already with version 4's columns
            elif version < 4:
                self._db.execute("ALTER TABLE rankings ADD COLUMN claimed_by TEXT")
                self._db.execute("ALTER TABLE rankings ADD COLUMN claimed_at REAL")
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, exc, tb):
                db.execute("COMMIT" if exc_type is None else "ROLLBACK")

        return _Tx()

    def close(self) -> None:
        self._db.close()

    def reopen(self) -> PreferenceStore:
        """A second connection to this store, for another thread (one thread at a time)."""
        return PreferenceStore(self.path, any_thread=True)

    @property
    def label_target(self) -> str:
        """What ``prefrl label`` is given to label this store: its run directory."""
        return str(self.path.parent)

    def __enter__(self) -> PreferenceStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # clips
    def add_clips(self, clips: list[Clip]) -> list[int]:
        """Save clips; returns their ids in order."""
        ids = []
        now = time.time()
        with self._transaction():
            for clip in clips:
                cur = self._db.execute(
                    "INSERT INTO clips (length, true_return, timestep, obs, actions, true_rewards, frames, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*_clip_row(clip), now))
                ids.append(int(cur.lastrowid))
        return ids

    def get_clips(self, ids: list[int], *, frames: bool = False) -> list[Clip]:
        """Load clips by id, in the order asked (frames only if ``frames``)."""
        if not ids:
            return []
        unique = sorted(set(int(i) for i in ids))
        rows = {}
        for chunk in range(0, len(unique), 500):
            part = unique[chunk:chunk + 500]
            cols = "id, obs, actions, true_rewards, timestep" + (", frames" if frames else "")
            q = f"SELECT {cols} FROM clips WHERE id IN ({','.join('?' * len(part))})"
            for row in self._db.execute(q, part):
                rows[row[0]] = row
        return _clips_from_rows(self.path, ids, rows, frames)

    def clip_ids(self) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT id FROM clips ORDER BY id")]

    def num_clips(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]

    # comparisons
    def add_queries(self, pairs: list[tuple[int, int]], source: str) -> list[int]:
        """Ask for labels on clip pairs (left id, right id); returns the comparison ids."""
        now = time.time()
        ids = []
        with self._transaction():
            for left, right in pairs:
                cur = self._db.execute(
                    "INSERT INTO comparisons (left_id, right_id, status, source, created) VALUES (?, ?, 'pending', ?, ?)",
                    (int(left), int(right), source, now),
                )
                ids.append(int(cur.lastrowid))
        return ids

    def record_labels(self, labels: list[tuple[int, float | None]], labeler: str) -> None:
        """Answer pending comparisons: (comparison id, preference or None for skipped), in one commit."""
        now = time.time()
        with self._transaction():
            for comparison_id, preference in labels:
                if preference is not None and preference not in (0.0, 0.5, 1.0):
                    raise StoreError(f"preference must be 0, 0.5 or 1 (or None to skip), got {preference!r}")
                status = "skipped" if preference is None else "labeled"
                self._db.execute(
                    "UPDATE comparisons SET status = ?, preference = ?, labeler = ?, labeled_at = ? WHERE id = ?",
                    (status, preference, labeler, now, int(comparison_id)),
                )

    def claim(self, labeler: str, ttl: float = 600.0, exclude: Collection[int] = ()) -> Comparison | None:
        """Take the oldest pending comparison for ``labeler`` and return it (None if none is left).

        A comparison claimed by another labeler in the last ``ttl`` seconds is passed over, so
        several windows on one store are never shown the same pair; a claim older than that (its
        window crashed or was left open) lapses. The claim and the read are one transaction.
        Comparisons with ids in ``exclude`` are passed over too (a window skips those it cannot show).
        """
        found = self._claim("comparisons", labeler, ttl, exclude)
        return None if found is None else self.comparison(found)

    def release(self, comparison_id: int, labeler: str) -> None:
        """Give back ``labeler``'s claim on a still-pending comparison (its window moved on or closed)."""
        self._release("comparisons", comparison_id, labeler)

    def unlabel(self, comparison_id: int, labeler: str) -> None:
        """Undo a label or a skip: the comparison is pending again, claimed by ``labeler``."""
        self._unlabel("comparisons", "preference", comparison_id, labeler)

    def _claim(self, table: str, labeler: str, ttl: float, exclude: Collection[int] = ()) -> int | None:
        now = time.time()
        skip = sorted(int(i) for i in exclude)
        with self._transaction():
            row = self._db.execute(
                f"SELECT id FROM {table} WHERE status = 'pending' AND (claimed_by IS NULL OR claimed_by = ?"
                f" OR claimed_at < ?) AND id NOT IN ({','.join('?' * len(skip))}) ORDER BY id LIMIT 1",
                (labeler, now - ttl, *skip)).fetchone()
            if row is None:
                return None
            self._db.execute(f"UPDATE {table} SET claimed_by = ?, claimed_at = ? WHERE id = ?", (labeler, now, row[0]))
        return row[0]

    def _unlabel(self, table: str, answer: str, query_id: int, labeler: str) -> None:
        with self._transaction():
            self._db.execute(
                f"UPDATE {table} SET status = 'pending', {answer} = NULL, labeler = NULL, labeled_at = NULL,"
                " claimed_by = ?, claimed_at = ? WHERE id = ?", (labeler, time.time(), int(query_id)))

    def _release(self, table: str, query_id: int, labeler: str) -> None:
        with self._transaction():
            self._db.execute(f"UPDATE {table} SET claimed_by = NULL, claimed_at = NULL WHERE id = ? AND"
                             " claimed_by = ? AND status = 'pending'", (int(query_id), labeler))

    def comparison(self, comparison_id: int) -> Comparison:
        row = self._db.execute("SELECT id, left_id, right_id, status, preference, source, labeler FROM comparisons"
                               " WHERE id = ?", (int(comparison_id),)).fetchone()
        if row is None:
            raise StoreError(f"{self.path} has no comparison {comparison_id}")
        return Comparison(*row)

    def num_pending(self) -> int:
        """Queries waiting for an answer: comparisons and rankings."""
        return (self._db.execute("SELECT COUNT(*) FROM comparisons WHERE status = 'pending'").fetchone()[0]
                + self._db.execute("SELECT COUNT(*) FROM rankings WHERE status = 'pending'").fetchone()[0])

    def comparisons(self, status: str | None = None) -> list[Comparison]:
        """All comparisons, or those with one status, oldest first."""
        q = "SELECT id, left_id, right_id, status, preference, source, labeler FROM comparisons"
        rows = self._db.execute(q + (" WHERE status = ?" if status else "") + " ORDER BY id",
                                (status,) if status else ())
        return [Comparison(*row) for row in rows]

    def import_labels(self, rows: list[dict], source: str = "import") -> tuple[int, int]:
        """Store answered comparisons brought from elsewhere (``left_id``, ``right_id``, ``preference``,
        ``labeler``, ``labeled_at``), all in one commit. A row that answers a query waiting in this
        store (the same pair, pending) answers it, so labels given elsewhere to the queries a trainer
        asked (exported, answered, imported) are what it waits for; a row this store already holds
        (the same pair, labeler and answer) is passed over, so importing a file twice adds nothing;
        any other row is added as a new comparison. Returns (added or answered, already held). Rows
        must be checked first (:func:`prefrl.reports.import_labels` does)."""
        added = held = 0
        now = time.time()
        with self._transaction():
            for row in rows:
                pair = (int(row["left_id"]), int(row["right_id"]), row["labeler"], float(row["preference"]))
                if self._db.execute("SELECT 1 FROM comparisons WHERE left_id = ? AND right_id = ? AND labeler IS ?"
                                    " AND preference = ? AND status = 'labeled'", pair).fetchone():
                    held += 1
                    continue
                waiting = self._db.execute("SELECT id FROM comparisons WHERE left_id = ? AND right_id = ? AND "
                                           "status = 'pending' ORDER BY id LIMIT 1", pair[:2]).fetchone()
                if waiting:
                    self._db.execute("UPDATE comparisons SET status = 'labeled', preference = ?, labeler = ?, "
                                     "labeled_at = ?, claimed_by = NULL, claimed_at = NULL WHERE id = ?",
                                     (pair[3], pair[2], row.get("labeled_at") or now, waiting[0]))
                    added += 1
                    continue
                self._db.execute(
                    "INSERT INTO comparisons (left_id, right_id, status, preference, source, labeler, created,"
                    " labeled_at) VALUES (?, ?, 'labeled', ?, ?, ?, ?, ?)",
                    (pair[0], pair[1], pair[3], source, pair[2], now, row.get("labeled_at") or now))
                added += 1
        return added, held

    def comparison_records(self) -> list[dict]:
        """Every comparison with all its fields (times included), oldest first: for export."""
        cur = self._db.execute("SELECT id, left_id, right_id, status, preference, source, labeler, created, labeled_at"
                               " FROM comparisons ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    def clip_records(self) -> list[dict]:
        """Every clip's metadata (id, length, true_return, timestep, created), no arrays."""
        cur = self._db.execute("SELECT id, length, true_return, timestep, created FROM clips ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    def num_labels(self) -> int:
        """Comparisons answered with a preference and rankings answered (skips do not count)."""
        return (self._db.execute("SELECT COUNT(*) FROM comparisons WHERE status = 'labeled'").fetchone()[0]
                + self._db.execute("SELECT COUNT(*) FROM rankings WHERE status = 'labeled'").fetchone()[0])

    # rankings (K-wise feedback)
    def add_ranking_queries(self, groups: list[tuple[int, ...]], source: str) -> list[int]:
        """Ask for rankings of groups of clip ids (each in the order shown); returns the ranking ids."""
        now = time.time()
        with self._transaction():
            return [int(self._db.execute(
                "INSERT INTO rankings (clip_ids, status, source, created) VALUES (?, 'pending', ?, ?)",
                (json.dumps([int(i) for i in group]), source, now)).lastrowid) for group in groups]

    def record_rankings(self, answers: list[tuple[int, list[int] | None]], labeler: str) -> None:
        """Answer pending rankings: (ranking id, positions best first, or None for skipped), in one commit."""
        now = time.time()
        with self._transaction():
            for ranking_id, order in answers:
                row = self._db.execute("SELECT clip_ids FROM rankings WHERE id = ?", (int(ranking_id),)).fetchone()
                if row is None:
                    raise StoreError(f"{self.path} has no ranking {ranking_id}")
                k = len(json.loads(row[0]))
                if order is not None and sorted(int(i) for i in order) != list(range(k)):
                    raise StoreError(f"ranking {ranking_id} must order positions 0..{k - 1} once each, got {order!r}")
                self._db.execute(
                    "UPDATE rankings SET status = ?, ranking = ?, labeler = ?, labeled_at = ? WHERE id = ?",
                    ("skipped" if order is None else "labeled",
                     None if order is None else json.dumps([int(i) for i in order]), labeler, now, int(ranking_id)))

    def claim_ranking(self, labeler: str, ttl: float = 600.0, exclude: Collection[int] = ()) -> Ranking | None:
        """Take the oldest pending ranking for ``labeler``, as :meth:`claim` takes a comparison."""
        found = self._claim("rankings", labeler, ttl, exclude)
        return None if found is None else self.ranking(found)

    def release_ranking(self, ranking_id: int, labeler: str) -> None:
        """Give back ``labeler``'s claim on a still-pending ranking."""
        self._release("rankings", ranking_id, labeler)

    def unlabel_ranking(self, ranking_id: int, labeler: str) -> None:
        """Undo a ranking or its skip: pending again, claimed by ``labeler``."""
        self._unlabel("rankings", "ranking", ranking_id, labeler)

    def ranking(self, ranking_id: int) -> Ranking:
        found = [r for r in self._ranking_rows(" WHERE id = ?", (int(ranking_id),))]
        if not found:
            raise StoreError(f"{self.path} has no ranking {ranking_id}")
        return found[0]

    def _ranking_rows(self, where: str, args: tuple) -> list[Ranking]:
        rows = self._db.execute("SELECT id, clip_ids, status, ranking, source, labeler FROM rankings" + where, args)
        return [Ranking(r[0], tuple(json.loads(r[1])), r[2], None if r[3] is None else tuple(json.loads(r[3])),
                        r[4], r[5]) for r in rows]

    def rankings(self, status: str | None = None) -> list[Ranking]:
        """All rankings, or those with one status, oldest first."""
        return self._ranking_rows((" WHERE status = ?" if status else "") + " ORDER BY id", (status,) if status else ())

    def ranking_records(self) -> list[dict]:
        """Every ranking with all its fields (times included), oldest first: for export."""
        cur = self._db.execute("SELECT id, clip_ids, status, ranking, source, labeler, created, labeled_at"
                               " FROM rankings ORDER BY id")
        names = [d[0] for d in cur.description]
        return [{k: (json.loads(v) if k in ("clip_ids", "ranking") and v is not None else v) for k, v in zip(names, row)}
                for row in cur]

