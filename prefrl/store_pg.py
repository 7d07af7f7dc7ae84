"""The preference store on a PostgreSQL server: the same calls as :class:`prefrl.store.PreferenceStore`,
for labelers on many machines and many windows labeling at once (docs/store.md, "Moving to PostgreSQL").

Arrays are the SQLite store's bytes (``np.save`` with ``allow_pickle=False``, zlib-compressed) in
``BYTEA`` columns: nothing in the store is a pickle. Each call that writes is one transaction,
committed (``synchronous_commit = on``) before it returns. Times are seconds since the epoch on the
server's clock, so labelers on machines whose clocks disagree still see claims lapse after ``ttl``.

Labelers may connect as roles of their own (:func:`labeler_role_sql`): such a role can read, claim
and answer queries, and undo its own answers, but cannot add or delete rows, and the database
refuses it any change to a query answered by another labeler. The store's owner role (the one that
created it) may do everything. A labeler role answers under its own name: a ``labeler`` argument
that differs from the role is refused (:class:`StoreError`) rather than silently replaced.

Needs ``psycopg`` 3 (``pip install 'prefrl[postgres]'``); ``import prefrl`` does not.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from .clips import Clip
from .errors import StoreError
from .store import APP_ID, SCHEMA_VERSION, Comparison, Ranking, _clip_row, _clips_from_rows

try:
    import psycopg
except ImportError:  # the SQLite store and everything else work without it
    psycopg = None

__all__ = ["PostgresStore", "labeler_role_sql"]

# The tables below are schema 4 of the SQLite store, translated. Versions are store.py's SCHEMA_VERSION,
# one numbering for both stores: when it moves on, this store refuses to open (and its test fails)
# until its tables are brought to it, rather than write tables of 4 under a newer number.
_TABLES_VERSION = 4
# Two processes opening a new store at once: the one that takes this lock first creates the tables.
_CREATE_LOCK = 0x7072_6566_726C  # "prefrl"
_NOW = "extract(epoch FROM now())::double precision"  # the transaction's start, on the server's clock
_IN_SCHEMA = "relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE clips (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        length INTEGER NOT NULL,
        true_return DOUBLE PRECISION NOT NULL,
        timestep BIGINT NOT NULL,
        obs BYTEA NOT NULL,
        actions BYTEA NOT NULL,
        true_rewards BYTEA NOT NULL,
        frames BYTEA,
        created DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE comparisons (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        left_id BIGINT NOT NULL REFERENCES clips(id),
        right_id BIGINT NOT NULL REFERENCES clips(id),
        status TEXT NOT NULL CHECK (status IN ('pending', 'labeled', 'skipped')),
        preference DOUBLE PRECISION CHECK (preference IN (0.0, 0.5, 1.0)),
        source TEXT NOT NULL,
        labeler TEXT,
        created DOUBLE PRECISION NOT NULL,
        labeled_at DOUBLE PRECISION,
        claimed_by TEXT,
        claimed_at DOUBLE PRECISION,
        CHECK ((status = 'labeled') = (preference IS NOT NULL))
    )""",
    "CREATE INDEX comparisons_status ON comparisons(status)",
    "CREATE INDEX comparisons_pair ON comparisons(left_id, right_id)",  # import_labels looks pairs up
    """CREATE TABLE rankings (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        clip_ids BIGINT[] NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'labeled', 'skipped')),
        ranking INTEGER[],
        source TEXT NOT NULL,
        labeler TEXT,
        created DOUBLE PRECISION NOT NULL,
        labeled_at DOUBLE PRECISION,
        claimed_by TEXT,
        claimed_at DOUBLE PRECISION,
        CHECK ((status = 'labeled') = (ranking IS NOT NULL)),
        CHECK (cardinality(ranking) = cardinality(clip_ids))
    )""",
    "CREATE INDEX rankings_status ON rankings(status)",
    # An answered query may be changed (relabeled, undone) only by the labeler who answered it, or by
    # the store's owner; and a labeler role may only answer under its own name. The owner (and a
    # superuser) passes: the trainer, `prefrl import` and an administrator fixing a mistake.
    """CREATE FUNCTION prefrl_guard_answer() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN
            RETURN NEW;
        END IF;
        IF OLD.status <> 'pending' AND OLD.labeler IS DISTINCT FROM current_user::text THEN
            RAISE EXCEPTION '% % was answered by %: only that labeler or the store owner may change it',
                TG_TABLE_NAME, OLD.id, OLD.labeler USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.status <> 'pending' AND NEW.labeler IS DISTINCT FROM current_user::text THEN
            RAISE EXCEPTION 'role % may answer % only under its own name, not %',
                current_user, TG_TABLE_NAME, NEW.labeler USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$""",
    "CREATE TRIGGER comparisons_guard BEFORE UPDATE ON comparisons FOR EACH ROW EXECUTE FUNCTION prefrl_guard_answer()",
    "CREATE TRIGGER rankings_guard BEFORE UPDATE ON rankings FOR EACH ROW EXECUTE FUNCTION prefrl_guard_answer()",
)

_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def labeler_role_sql(role: str, password: str | None = None) -> str:
    """The SQL an administrator runs, connected to the store's database, to let one person label.

    The role may log in, read the store, claim queries and answer them (and undo its own answers):
    SELECT on the four tables and UPDATE on the answer and claim columns of ``comparisons`` and
    ``rankings``, nothing else: no INSERT (so no ``prefrl label --new-pairs``, which asks new
    queries), no DELETE, no TRUNCATE. The store's trigger refuses it changes to others' answers.

    Args:
        role: the role name, which is also the name every answer of this labeler is stored under
            (letters, digits and ``_``, not starting with a digit, at most 63).
        password: its password for ``scram-sha-256`` log-in, or None for a role that authenticates
            another way (a client certificate, or a password set later).
    """
    if not _ROLE_NAME.fullmatch(role):
        raise ValueError(f"labeler role {role!r} must be letters, digits and _, not starting with a digit, "
                         "at most 63 characters: pick another name")
    quoted = f'"{role}"'
    login = "" if password is None else " PASSWORD '" + password.replace("'", "''") + "'"
    return "\n".join([
        f"CREATE ROLE {quoted} LOGIN{login};",
        "DO $grant$ BEGIN",
        f"    EXECUTE format('GRANT CONNECT ON DATABASE %I TO {quoted}', current_database());",
        f"    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {quoted}', current_schema());",
        "END $grant$;",
        f"GRANT SELECT ON meta, clips, comparisons, rankings TO {quoted};",
        f"GRANT UPDATE (status, preference, labeler, labeled_at, claimed_by, claimed_at) ON comparisons TO {quoted};",
        f"GRANT UPDATE (status, ranking, labeler, labeled_at, claimed_by, claimed_at) ON rankings TO {quoted};",
    ]) + "\n"


def _without_password(url: str) -> str:
    """The URL for messages: its password (in the URL or as ``password=``) left out."""
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres") and parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        url = urlunsplit(parts._replace(netloc=f"{parts.username or ''}@{host}"))
    return re.sub(r"password=[^&\s]*", "password=***", url)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:240] or type(exc).__name__


class PostgresStore:
    """A run's clips and comparisons in one PostgreSQL database: the calls of
    :class:`prefrl.store.PreferenceStore`, with the same meanings and return values.

    Args:
        url: the database, as ``postgresql://user[:password]@host:port/dbname`` (any libpq
            connection string works). Its tables are created in the connection's current schema.
        env: the env name recorded in a new store; a store of another env is refused.
        create: create the store if the database holds no tables; with False such a database is
            refused (a labeling window must not create a store the trainer is about to).

    Attributes:
        url: the URL given (with its password, to open more connections).
        path: the URL without its password, for messages; a string, not a file: callers that need
            the run directory (``store.path.parent``) do not work with this store.
        env: the env the store's clips come from ('' or None if none was given at creation).

    Raises:
        StoreError: the server cannot be reached or refuses the log-in; the database is not a prefrl
            store, was written by a newer schema, or belongs to another env.
    """

    def __init__(self, url: str, env: str | None = None, create: bool = True):
        self.url = url
        self.path = _without_password(url)
        if psycopg is None:
            raise StoreError(f"{self.path} is a PostgreSQL store, and psycopg is not installed: "
                             "pip install 'prefrl[postgres]'")
        if SCHEMA_VERSION != _TABLES_VERSION:
            raise StoreError(f"this prefrl's store schema is {SCHEMA_VERSION}, and its PostgreSQL store has only "
                             f"schema {_TABLES_VERSION}'s tables: use a SQLite store (a run directory) until it catches up")
        try:
            # autocommit: a read never leaves a transaction open; every write is an explicit one.
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            why = _one_line(exc)
            password = urlsplit(url).password if "://" in url else None
            if password:
                why = why.replace(password, "***")
            hint = ("check the user name and password" if "authentication" in why else
                    "check that the server runs and the URL (postgresql://user@host:port/dbname)")
            raise StoreError(f"cannot open the store at {self.path}: {why}; {hint}") from None
        try:
            with self._speaking():
                self._db.execute("SET synchronous_commit = on")  # a label acknowledged is on the server's disk
                if create:
                    self._create(env)
                self._check(env)
                self._role, self._owner = self._db.execute(
                    "SELECT current_user::text, pg_has_role(current_user, relowner, 'MEMBER') FROM pg_class"
                    " WHERE oid = 'comparisons'::regclass").fetchone()
        except BaseException:
            self._db.close()
            raise

    def _create(self, env: str | None) -> None:
        """Write the schema into a database with no tables in its current schema; one transaction
        under an advisory lock, so of two processes opening a new store at once exactly one creates it
        and the other then finds it. A database that holds anything is left alone."""
        with self._transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            if self._db.execute(f"SELECT EXISTS (SELECT 1 FROM pg_class WHERE {_IN_SCHEMA}"
                                " AND relkind IN ('r', 'p', 'v', 'm', 'f'))").fetchone()[0]:
                return
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute(
                f"INSERT INTO meta VALUES ('app', %s), ('schema_version', %s), ('env', %s), ('created', {_NOW}::text)",
                (APP_ID, str(SCHEMA_VERSION), env or ""))

    def _check(self, env: str | None) -> None:
        has = self._db.execute("SELECT to_regclass('meta') IS NOT NULL,"
                               f" EXISTS (SELECT 1 FROM pg_class WHERE {_IN_SCHEMA} AND relkind = 'r')").fetchone()
        if not has[1]:
            raise StoreError(f"{self.path} is not a prefrl store yet: start `prefrl train` first or give another database")
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall()) if has[0] else {}
        if meta.get("app") != APP_ID:
            raise StoreError(f"{self.path} is not a prefrl store (it has no prefrl metadata): "
                             "give another database, or an empty one for a new store")
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has store schema {version}, newer than this prefrl's {SCHEMA_VERSION}: "
                             "upgrade prefrl or give another database")
        if version < SCHEMA_VERSION:  # PostgreSQL stores began at schema 4: nothing older was ever written
            raise StoreError(f"{self.path} says it has store schema {version}, and no PostgreSQL store was ever "
                             "written with it: its meta table was edited; restore it from a backup")
        missing = [t for t in ("clips", "comparisons", "rankings")
                   if self._db.execute("SELECT to_regclass(%s) IS NULL", (t,)).fetchone()[0]]
        if missing:
            raise StoreError(f"{self.path} has lost its {', '.join(missing)} table{'s' if len(missing) > 1 else ''}: "
                             "the store is damaged and was left as it is; restore it from a backup")
        if env and meta.get("env") and meta["env"] != env:
            raise StoreError(f"{self.path} holds clips of env {meta['env']!r}, not {env!r}: give another database")
        self.env = meta.get("env") or env

    @contextmanager
    def _speaking(self) -> Iterator[None]:
        """Turn the server's errors into one-line StoreErrors that say what to do."""
        try:
            yield
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreError(f"{self.path} refused role {getattr(self, '_role', '?')!r}: {_one_line(exc)}; "
                             "ask the store's owner") from None
        except psycopg.Error as exc:
            if self._db.broken:  # the server went away or the network did; not a refused statement
                raise StoreError(f"lost the store at {self.path} ({_one_line(exc)}): check that the server runs and "
                                 "run the command again; every answer acknowledged before is kept") from None
            raise StoreError(f"{self.path}: the server refused the call ({_one_line(exc)}); nothing of it was written")\
                from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction, committed on leaving (rolled back on an error)."""
        with self._speaking(), self._db.transaction():
            yield

    def _rows(self, query: str, args: tuple | dict = ()) -> list[tuple]:
        with self._speaking():
            return self._db.execute(query, args).fetchall()

    def _records(self, query: str) -> list[dict]:
        with self._speaking():
            cur = self._db.execute(query)
            names = [d.name for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def _as(self, labeler: str) -> str:
        """``labeler``, checked: a labeler role claims and answers under its own name only."""
        if not self._owner and labeler != self._role:
            raise StoreError(f"{self.path}: connected as labeler role {self._role!r}, which answers under its own "
                             f"name, not {labeler!r}: give --labeler {self._role}")
        return labeler

    def close(self) -> None:
        self._db.close()

    def reopen(self) -> PostgresStore:
        """A second connection to this store, for another thread."""
        return PostgresStore(self.url)

    @property
    def label_target(self) -> str:
        """What ``prefrl label`` is given to label this store, from any machine that reaches the server."""
        return f"--store {self.path}"

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # clips
    def add_clips(self, clips: list[Clip]) -> list[int]:
        """Save clips; returns their ids in order."""
        ids = []
        with self._transaction():
            for clip in clips:
                ids.append(self._db.execute(
                    "INSERT INTO clips (length, true_return, timestep, obs, actions, true_rewards, frames, created)"
                    f" VALUES (%s, %s, %s, %s, %s, %s, %s, {_NOW}) RETURNING id", _clip_row(clip)).fetchone()[0])
        return ids

    def get_clips(self, ids: list[int], *, frames: bool = False) -> list[Clip]:
        """Load clips by id, in the order asked (frames only if ``frames``)."""
        if not ids:
            return []
        unique = sorted(set(int(i) for i in ids))
        cols = "id, obs, actions, true_rewards, timestep" + (", frames" if frames else "")
        rows = {row[0]: row for row in self._rows(f"SELECT {cols} FROM clips WHERE id = ANY(%s)", (unique,))}
        return _clips_from_rows(self.path, ids, rows, frames)

    def clip_ids(self) -> list[int]:
        return [r[0] for r in self._rows("SELECT id FROM clips ORDER BY id")]

    def num_clips(self) -> int:
        return self._rows("SELECT COUNT(*) FROM clips")[0][0]

    # comparisons
    def add_queries(self, pairs: list[tuple[int, int]], source: str) -> list[int]:
        """Ask for labels on clip pairs (left id, right id); returns the comparison ids."""
        with self._transaction():
            return [self._db.execute(
                f"INSERT INTO comparisons (left_id, right_id, status, source, created) VALUES (%s, %s, 'pending', %s, {_NOW})"
                " RETURNING id", (int(left), int(right), source)).fetchone()[0] for left, right in pairs]

    def record_labels(self, labels: list[tuple[int, float | None]], labeler: str) -> None:
        """Answer pending comparisons: (comparison id, preference or None for skipped), in one commit."""
        for _, preference in labels:
            if preference is not None and preference not in (0.0, 0.5, 1.0):
                raise StoreError(f"preference must be 0, 0.5 or 1 (or None to skip), got {preference!r}")
        labeler = self._as(labeler)
        with self._transaction():
            for comparison_id, preference in labels:
                self._db.execute(
                    f"UPDATE comparisons SET status = %s, preference = %s, labeler = %s, labeled_at = {_NOW} WHERE id = %s",
                    ("skipped" if preference is None else "labeled", None if preference is None else float(preference),
                     labeler, int(comparison_id)))

    def claim(self, labeler: str, ttl: float = 600.0, exclude: Collection[int] = ()) -> Comparison | None:
        """Take the oldest pending comparison for ``labeler`` and return it (None if none is left).

        A comparison claimed by another labeler in the last ``ttl`` seconds is passed over, so
        several windows on one store are never shown the same pair; a claim older than that (its
        window crashed or was left open) lapses. One statement that skips rows another labeler is
        claiming at this moment, so many labelers take different pairs without waiting. Comparisons
        with ids in ``exclude`` are passed over too (a window skips those it cannot show).
        """
        row = self._claim("comparisons", "left_id, right_id, status, preference, source, labeler", labeler, ttl, exclude)
        return None if row is None else Comparison(*row)

    def _claim(self, table: str, columns: str, labeler: str, ttl: float, exclude: Collection[int]) -> tuple | None:
        args = {"who": self._as(labeler), "ttl": float(ttl), "skip": sorted(int(i) for i in exclude)}
        rows = self._rows(
            f"UPDATE {table} SET claimed_by = %(who)s, claimed_at = {_NOW} WHERE id = ("
            f"SELECT id FROM {table} WHERE status = 'pending' AND (claimed_by IS NULL OR claimed_by = %(who)s"
            f" OR claimed_at < {_NOW} - %(ttl)s) AND id <> ALL(%(skip)s::bigint[])"
            f" ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, {columns}", args)
        return rows[0] if rows else None

    def release(self, comparison_id: int, labeler: str) -> None:
        """Give back ``labeler``'s claim on a still-pending comparison (its window moved on or closed)."""
        self._release("comparisons", comparison_id, labeler)

    def _release(self, table: str, query_id: int, labeler: str) -> None:
        with self._transaction():
            self._db.execute(f"UPDATE {table} SET claimed_by = NULL, claimed_at = NULL WHERE id = %s AND"
                             " claimed_by = %s AND status = 'pending'", (int(query_id), self._as(labeler)))

    def unlabel(self, comparison_id: int, labeler: str) -> None:
        """Undo a label or a skip: the comparison is pending again, claimed by ``labeler``."""
        self._unlabel("comparisons", "preference", comparison_id, labeler)

    def _unlabel(self, table: str, answer: str, query_id: int, labeler: str) -> None:
        with self._transaction():
            self._db.execute(
                f"UPDATE {table} SET status = 'pending', {answer} = NULL, labeler = NULL, labeled_at = NULL,"
                f" claimed_by = %s, claimed_at = {_NOW} WHERE id = %s", (self._as(labeler), int(query_id)))

    def comparison(self, comparison_id: int) -> Comparison:
        rows = self._rows("SELECT id, left_id, right_id, status, preference, source, labeler FROM comparisons"
                          " WHERE id = %s", (int(comparison_id),))
        if not rows:
            raise StoreError(f"{self.path} has no comparison {comparison_id}")
        return Comparison(*rows[0])

    def num_pending(self) -> int:
        """Queries waiting for an answer: comparisons and rankings."""
        return self._rows("SELECT (SELECT COUNT(*) FROM comparisons WHERE status = 'pending')"
                          " + (SELECT COUNT(*) FROM rankings WHERE status = 'pending')")[0][0]

    def comparisons(self, status: str | None = None) -> list[Comparison]:
        """All comparisons, or those with one status, oldest first."""
        q = "SELECT id, left_id, right_id, status, preference, source, labeler FROM comparisons"
        rows = self._rows(q + (" WHERE status = %s" if status else "") + " ORDER BY id", (status,) if status else ())
        return [Comparison(*row) for row in rows]

    def import_labels(self, rows: list[dict], source: str = "import") -> tuple[int, int]:
        """Store answered comparisons brought from elsewhere (``left_id``, ``right_id``, ``preference``,
        ``labeler``, ``labeled_at``), all in one commit. A row that answers a query waiting in this
        store (the same pair, pending) answers it; a row this store already holds (the same pair,
        labeler and answer) is passed over, so importing a file twice adds nothing; any other row is
        added as a new comparison. Returns (added or answered, already held). Rows must be checked
        first (:func:`prefrl.reports.import_labels` does). Needs the owner role (INSERT)."""
        added = held = 0
        with self._transaction():
            for row in rows:
                left, right, labeler, preference = (int(row["left_id"]), int(row["right_id"]), row["labeler"],
                                                    float(row["preference"]))
                at = row.get("labeled_at") or None
                if self._db.execute("SELECT 1 FROM comparisons WHERE left_id = %s AND right_id = %s AND labeler IS NOT"
                                    " DISTINCT FROM %s::text AND preference = %s AND status = 'labeled'",
                                    (left, right, labeler, preference)).fetchone():
                    held += 1
                    continue
                waiting = self._db.execute("SELECT id FROM comparisons WHERE left_id = %s AND right_id = %s AND "
                                           "status = 'pending' ORDER BY id LIMIT 1 FOR UPDATE", (left, right)).fetchone()
                if waiting:
                    self._db.execute("UPDATE comparisons SET status = 'labeled', preference = %s, labeler = %s, "
                                     f"labeled_at = COALESCE(%s::double precision, {_NOW}), claimed_by = NULL,"
                                     " claimed_at = NULL WHERE id = %s", (preference, labeler, at, waiting[0]))
                else:
                    self._db.execute(
                        "INSERT INTO comparisons (left_id, right_id, status, preference, source, labeler, created,"
                        f" labeled_at) VALUES (%s, %s, 'labeled', %s, %s, %s, {_NOW},"
                        f" COALESCE(%s::double precision, {_NOW}))", (left, right, preference, source, labeler, at))
                added += 1
        return added, held

    def comparison_records(self) -> list[dict]:
        """Every comparison with all its fields (times included), oldest first: for export."""
        return self._records("SELECT id, left_id, right_id, status, preference, source, labeler, created, labeled_at"
                             " FROM comparisons ORDER BY id")

    def clip_records(self) -> list[dict]:
        """Every clip's metadata (id, length, true_return, timestep, created), no arrays."""
        return self._records("SELECT id, length, true_return, timestep, created FROM clips ORDER BY id")

    def num_labels(self) -> int:
        """Comparisons answered with a preference and rankings answered (skips do not count)."""
        return self._rows("SELECT (SELECT COUNT(*) FROM comparisons WHERE status = 'labeled')"
                          " + (SELECT COUNT(*) FROM rankings WHERE status = 'labeled')")[0][0]

    # rankings (K-wise feedback)
    def add_ranking_queries(self, groups: list[tuple[int, ...]], source: str) -> list[int]:
        """Ask for rankings of groups of clip ids (each in the order shown); returns the ranking ids."""
        with self._transaction():
            return [self._db.execute(
                f"INSERT INTO rankings (clip_ids, status, source, created) VALUES (%s, 'pending', %s, {_NOW}) RETURNING id",
                ([int(i) for i in group], source)).fetchone()[0] for group in groups]

    def record_rankings(self, answers: list[tuple[int, list[int] | None]], labeler: str) -> None:
        """Answer pending rankings: (ranking id, positions best first, or None for skipped), in one commit."""
        labeler = self._as(labeler)
        with self._transaction():
            for ranking_id, order in answers:
                row = self._db.execute("SELECT cardinality(clip_ids) FROM rankings WHERE id = %s",
                                       (int(ranking_id),)).fetchone()
                if row is None:
                    raise StoreError(f"{self.path} has no ranking {ranking_id}")
                k = row[0]
                if order is not None and sorted(int(i) for i in order) != list(range(k)):
                    raise StoreError(f"ranking {ranking_id} must order positions 0..{k - 1} once each, got {order!r}")
                self._db.execute(
                    f"UPDATE rankings SET status = %s, ranking = %s, labeler = %s, labeled_at = {_NOW} WHERE id = %s",
                    ("skipped" if order is None else "labeled", None if order is None else [int(i) for i in order],
                     labeler, int(ranking_id)))

    def claim_ranking(self, labeler: str, ttl: float = 600.0, exclude: Collection[int] = ()) -> Ranking | None:
        """Take the oldest pending ranking for ``labeler``, as :meth:`claim` takes a comparison."""
        row = self._claim("rankings", "clip_ids, status, ranking, source, labeler", labeler, ttl, exclude)
        return None if row is None else self._ranking(row)

    def release_ranking(self, ranking_id: int, labeler: str) -> None:
        """Give back ``labeler``'s claim on a still-pending ranking."""
        self._release("rankings", ranking_id, labeler)

    def unlabel_ranking(self, ranking_id: int, labeler: str) -> None:
        """Undo a ranking or its skip: pending again, claimed by ``labeler``."""
        self._unlabel("rankings", "ranking", ranking_id, labeler)

    @staticmethod
    def _ranking(r: tuple) -> Ranking:
        return Ranking(r[0], tuple(r[1]), r[2], None if r[3] is None else tuple(r[3]), r[4], r[5])

    def ranking(self, ranking_id: int) -> Ranking:
        rows = self._rows("SELECT id, clip_ids, status, ranking, source, labeler FROM rankings WHERE id = %s",
                          (int(ranking_id),))
        if not rows:
            raise StoreError(f"{self.path} has no ranking {ranking_id}")
        return self._ranking(rows[0])

    def rankings(self, status: str | None = None) -> list[Ranking]:
        """All rankings, or those with one status, oldest first."""
        rows = self._rows("SELECT id, clip_ids, status, ranking, source, labeler FROM rankings"
                          + (" WHERE status = %s" if status else "") + " ORDER BY id", (status,) if status else ())
        return [self._ranking(r) for r in rows]

    def ranking_records(self) -> list[dict]:
        """Every ranking with all its fields (times included), oldest first: for export."""
        return self._records("SELECT id, clip_ids, status, ranking, source, labeler, created, labeled_at"
                             " FROM rankings ORDER BY id")
