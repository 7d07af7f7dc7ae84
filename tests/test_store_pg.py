"""The PostgreSQL store against a real server: a throwaway cluster started for this module
(``experiments/pg_server.py``).

The tests shared with the SQLite store run on both (``store_kind``), so the two keep one meaning;
the rest are PostgreSQL's own: claims that skip rows being claimed, creation by two processes at
once, labeler roles the database holds to their own answers, a server that goes away, and the
store's fault drills (``experiments/drills.py``) on the server.
"""

import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from prefrl.clips import Clip, pack_frames, unpack_frames
from prefrl.errors import StoreError
from prefrl.store import SCHEMA_VERSION, DamagedClipError, PreferenceStore

psycopg = pytest.importorskip("psycopg", reason="pip install 'psycopg[binary]>=3.1,<4' (the test extra has it)")
from prefrl import store_pg  # noqa: E402  (after the skip: it needs psycopg)
from prefrl.store_pg import PostgresStore, labeler_role_sql  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from drills import burst_drill, check_store, kill_writer_drill, make_store  # noqa: E402
from pg_server import OWNER, OWNER_PASSWORD, Server, _binaries, _free_port  # noqa: E402


def _clip(seed: int, length: int = 5, frames: bool = False) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(rng.normal(size=(length, 4)).astype(np.float32), rng.integers(0, 2, size=length),
                rng.normal(size=length).astype(np.float32),
                rng.integers(0, 256, size=(length, 6, 8, 3), dtype=np.uint8) if frames else None, timestep=seed)


@pytest.fixture(scope="module")
def server():
    bindir = _binaries()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install -y postgresql")
    srv = Server(bindir)
    yield srv
    srv.remove()


@pytest.fixture
def pg_url(server) -> str:
    """The owner's URL of a new, empty store (a schema of its own)."""
    return server.url(server.new_store())


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request, tmp_path):
    """Opens one store of either kind, again and again (another connection each time)."""
    if request.param == "sqlite":
        return lambda **kw: PreferenceStore(tmp_path / "s.sqlite", **kw)
    url = request.getfixturevalue("pg_url")
    return lambda **kw: PostgresStore(url, **kw)


# Tests that both stores pass (ported from tests/test_store.py, some with more checks).

def test_clips_round_trip_bit_exactly(store_kind):
    clips = [_clip(0, frames=True), _clip(1), _clip(2, length=3, frames=True)]
    clips[2] = Clip(clips[2].obs, clips[2].actions, clips[2].true_rewards, pack_frames(clips[2].frames), 7)
    with store_kind(env="cartpole") as store:
        ids = store.add_clips(clips)
        back = store.get_clips(ids[::-1], frames=True)
        without = store.get_clips([ids[0]])
        assert store.clip_ids() == ids and store.num_clips() == 3
        assert [r["length"] for r in store.clip_records()] == [5, 5, 3]
        with pytest.raises(StoreError, match=r"no clips with ids \[999\]"):
            store.get_clips([ids[0], 999])
        with pytest.raises(ValueError):  # an object array would need a pickle: refused, nothing stored
            store.add_clips([_clip(3), Clip(np.array([{"a": 1}] * 5, dtype=object), clips[1].actions,
                                            clips[1].true_rewards)])
        assert store.num_clips() == 3
    assert [c.clip_id for c in back] == ids[::-1] and without[0].frames is None
    for clip, got in zip(clips, back[::-1]):
        for name in ("obs", "actions", "true_rewards"):
            want, have = getattr(clip, name), getattr(got, name)
            assert have.dtype == want.dtype and have.shape == want.shape and have.tobytes() == want.tobytes()
        assert got.timestep == clip.timestep
    assert back[2].frames.dtype == np.uint8 and back[2].frames.tobytes() == clips[0].frames.tobytes()
    assert back[1].frames is None
    assert back[0].frames.tobytes() == unpack_frames(clips[2].frames).tobytes()  # stored unpacked, packed or not


def test_labels_persist_and_skips_do_not_count(store_kind):
    with store_kind(env="cartpole") as store:
        a, b, c = store.add_clips([_clip(0), _clip(1), _clip(2)])
        q = store.add_queries([(a, b), (b, c), (a, c)], source="oracle")
        store.record_labels([(q[0], 1.0), (q[1], None)], labeler="ann")
    with store_kind(env="cartpole") as store:
        assert store.num_labels() == 1 and store.num_pending() == 1
        assert [x.status for x in store.comparisons()] == ["labeled", "skipped", "pending"]
        assert store.comparisons("labeled")[0].preference == 1.0
        assert store.comparisons("labeled")[0].labeler == "ann"
        records = store.comparison_records()
        assert [r["status"] for r in records] == ["labeled", "skipped", "pending"]
        assert records[0]["labeled_at"] >= records[0]["created"] > 0 and records[2]["labeled_at"] is None


def test_bad_preference_is_refused_and_nothing_half_written(store_kind):
    with store_kind() as store:
        a, b = store.add_clips([_clip(0), _clip(1)])
        q = store.add_queries([(a, b), (b, a)], source="oracle")
        with pytest.raises(StoreError, match="0, 0.5 or 1"):
            store.record_labels([(q[0], 1.0), (q[1], 0.7)], labeler="x")
        assert store.num_labels() == 0 and store.num_pending() == 2


def test_two_labelers_never_claim_the_same_pair_and_stale_claims_lapse(store_kind):
    with store_kind(env="cartpole") as store:
        ids = store.add_clips([_clip(i) for i in range(6)])
        q = store.add_queries([(ids[0], ids[1]), (ids[2], ids[3]), (ids[4], ids[5])], source="human")
    ann, bob = store_kind(), store_kind()  # two windows, two connections
    a, b = ann.claim("ann", exclude=[q[0]]), bob.claim("bob")
    assert (a.id, b.id) == (q[1], q[0])  # ann passed over the one she excluded
    assert bob.claim("cy").id == q[2] and ann.claim("dora") is None  # all three are claimed
    assert ann.claim("ann").id == a.id  # a labeler keeps their own claim
    assert bob.claim("carl", ttl=0.0).id == min(q)  # claims older than ttl lapse: carl takes the oldest
    bob.release(min(q), "carl")
    assert ann.claim("dora").id == min(q)
    assert ann.claim("ed", ttl=0.0, exclude=q[:2]).id == q[2]
    ann.close(), bob.close()


def test_undo_puts_a_label_back_to_pending(store_kind):
    with store_kind(env="cartpole") as store:
        ids = store.add_clips([_clip(0), _clip(1)])
        (cid,) = store.add_queries([(ids[0], ids[1])], source="human")
        store.record_labels([(cid, 1.0)], labeler="ann")
        assert store.num_labels() == 1 and store.num_pending() == 0
        store.unlabel(cid, "ann")
        c = store.comparison(cid)
        assert (c.status, c.preference, c.labeler) == ("pending", None, None)
        assert store.claim("bob") is None and store.claim("ann").id == cid  # the undoer holds it
        with pytest.raises(StoreError, match="no comparison 999"):
            store.comparison(999)


def test_rankings_round_trip_count_as_labels_and_refuse_a_non_permutation(store_kind):
    with store_kind(env="cartpole") as store:
        ids = store.add_clips([_clip(k) for k in range(4)])
        r1, r2 = store.add_ranking_queries([(ids[0], ids[1], ids[2]), (ids[3], ids[2], ids[1])], source="oracle")
        assert [r.status for r in store.rankings()] == ["pending", "pending"] and store.num_labels() == 0
        with pytest.raises(StoreError, match="positions 0..2 once each"):
            store.record_rankings([(r1, [0, 0, 1])], labeler="oracle")
        with pytest.raises(StoreError, match="no ranking 999"):
            store.record_rankings([(r1, [0, 1, 2]), (999, None)], labeler="oracle")
        assert store.ranking(r1).status == "pending"  # the refused call wrote nothing
        store.record_rankings([(r1, [2, 0, 1]), (r2, None)], labeler="oracle")
        labeled = store.rankings("labeled")
        assert len(labeled) == 1 and labeled[0].ordered == (ids[2], ids[0], ids[1])
        assert labeled[0].clip_ids == (ids[0], ids[1], ids[2]) and labeled[0].labeler == "oracle"
        assert store.rankings("skipped")[0].id == r2 and store.num_labels() == 1
        records = store.ranking_records()
        assert records[0]["ranking"] == [2, 0, 1] and records[0]["clip_ids"] == list(ids[:3])
        assert records[1]["ranking"] is None and records[1]["labeled_at"] is not None


def test_rankings_are_claimed_released_and_undone_as_pairs_are(store_kind):
    with store_kind(env="cartpole") as store:
        ids = store.add_clips([_clip(k) for k in range(4)])
        first, second = store.add_ranking_queries([tuple(ids[:3]), tuple(ids[1:])], source="human")
        assert store.num_pending() == 2
        assert store.claim_ranking("ann").id == first and store.claim_ranking("bob").id == second
        assert store.claim_ranking("cy") is None  # both held
        assert store.claim_ranking("cy", ttl=0.0, exclude=[first]).id == second
        store.release_ranking(second, "cy")
        store.record_rankings([(first, [2, 0, 1])], labeler="ann")
        assert store.num_labels() == 1 and store.num_pending() == 1
        store.unlabel_ranking(first, "ann")
        assert store.ranking(first).status == "pending" and store.num_labels() == 0
        assert store.claim_ranking("bob").id == second  # released by cy; bob's own claim had lapsed to cy
        assert store.claim_ranking("dora") is None and store.claim_ranking("ann").id == first


def test_import_answers_waiting_queries_and_twice_adds_nothing(store_kind):
    with store_kind(env="cartpole") as store:
        a, b, c = store.add_clips([_clip(0), _clip(1), _clip(2)])
        waiting, other = store.add_queries([(a, b), (b, c)], source="human")
        store.claim("ann")  # a window holds the waiting query; the import answers it all the same
        rows = [{"left_id": a, "right_id": b, "preference": 0.0, "labeler": "zoe", "labeled_at": 1234.5},
                {"left_id": a, "right_id": c, "preference": 0.5, "labeler": "zoe"},
                {"left_id": b, "right_id": a, "preference": 1.0, "labeler": None}]
        assert store.import_labels(rows) == (3, 0)
        got = store.comparison(waiting)
        assert (got.status, got.preference, got.labeler, got.source) == ("labeled", 0.0, "zoe", "human")
        assert store.comparison(other).status == "pending" and store.num_pending() == 1
        assert [x.source for x in store.comparisons()[2:]] == ["import", "import"]
        records = store.comparison_records()
        assert records[0]["labeled_at"] == 1234.5 and records[3]["labeled_at"] >= records[3]["created"]
        assert store.import_labels(rows, source="again") == (0, 3)  # the same rows again: all held
        assert len(store.comparisons()) == 4 and store.num_labels() == 3
        # the same pair again with a pending query: answered, no new row
        (again,) = store.add_queries([(a, b)], source="human")
        assert store.import_labels([dict(rows[0], labeler="yan")]) == (1, 0)
        assert store.comparison(again).labeler == "yan" and len(store.comparisons()) == 5 and store.num_labels() == 4


# PostgreSQL's own.

def test_schema_version_is_the_sqlite_stores():
    assert store_pg._TABLES_VERSION == SCHEMA_VERSION, (
        "store.py's SCHEMA_VERSION moved on: bring store_pg's tables (and _TABLES_VERSION) to it")


def test_clips_are_numpy_bytes_never_pickles_and_damage_is_reported(server, pg_url):
    with PostgresStore(pg_url, env="cartpole") as store:
        (cid,) = store.add_clips([_clip(0, frames=True)])
    with psycopg.connect(pg_url, autocommit=True) as db:
        for column in ("obs", "actions", "true_rewards", "frames"):
            raw = zlib.decompress(db.execute(f"SELECT {column} FROM clips WHERE id = %s", (cid,)).fetchone()[0])
            assert raw.startswith(b"\x93NUMPY") and b"\x80\x04\x95" not in raw[:200]  # npy header, no pickle
        db.execute("UPDATE clips SET obs = %s WHERE id = %s", (b"not zlib at all", cid))
    with PostgresStore(pg_url) as store:
        with pytest.raises(DamagedClipError, match=f"clip {cid} is damaged") as err:
            store.get_clips([cid])
    assert err.value.clip_id == cid and "\n" not in str(err.value)


def test_an_answer_is_visible_to_other_connections_once_the_call_returns(server, pg_url):
    with PostgresStore(pg_url, env="cartpole") as store, psycopg.connect(pg_url, autocommit=True) as other:
        ids = store.add_clips([_clip(0), _clip(1)])
        q = store.add_queries([(ids[0], ids[1])] * 2, source="human")
        store.record_labels([(q[0], 0.5)], labeler="ann")
        assert other.execute("SELECT status, preference, labeler FROM comparisons WHERE id = %s",
                             (q[0],)).fetchone() == ("labeled", 0.5, "ann")
        (rid,) = store.add_ranking_queries([tuple(ids)], source="human")
        store.record_rankings([(rid, [1, 0])], labeler="ann")
        assert other.execute("SELECT ranking FROM rankings WHERE id = %s", (rid,)).fetchone()[0] == [1, 0]
        assert store._db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # nothing left open


def test_claims_skip_pairs_being_claimed_and_many_labelers_take_different_pairs(server, pg_url):
    with PostgresStore(pg_url, env="cartpole") as store:
        ids = store.add_clips([_clip(k) for k in range(4)])
        q = store.add_queries([(ids[i], ids[j]) for i in range(4) for j in range(4) if i != j] * 3, source="human")
    with psycopg.connect(pg_url) as holder:  # a claim in flight: the oldest pair's row is locked
        holder.execute("SELECT id FROM comparisons WHERE id = %s FOR UPDATE", (q[0],))
        with PostgresStore(pg_url) as bob:
            bob._db.execute("SET lock_timeout = '2s'")  # waiting on the lock would fail, not hang
            assert bob.claim("bob").id == q[1]
        holder.rollback()
    taken: list[list[int]] = [[] for _ in range(6)]

    def label(k: int) -> None:
        with PostgresStore(pg_url) as window:
            while (c := window.claim(f"w{k}")) is not None:
                taken[k].append(c.id)
                window.record_labels([(c.id, 1.0)], labeler=f"w{k}")

    threads = [threading.Thread(target=label, args=(k,)) for k in range(6)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    every = [i for ids_ in taken for i in ids_]
    assert sorted(every) == [q[0], *q[2:]]  # each pair once, by one window; bob's claim on q[1] stands


_OPENER = """
import sys
from prefrl.store_pg import PostgresStore
for url in sys.stdin:
    try:
        PostgresStore(url.strip(), env="cartpole").close()
        print("ok", flush=True)
    except Exception as exc:
        print(repr(exc).replace(chr(10), " "), flush=True)
"""


def test_two_processes_creating_a_new_store_at_once_both_succeed(server):
    urls = [server.url(server.new_store()) for _ in range(6)]
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).parents[1]) for _ in range(2)]
    answers = []
    try:
        for url in urls:  # both processes, ready and waiting on stdin, get each new store at once
            for p in procs:
                p.stdin.write(url + "\n")
            for p in procs:
                p.stdin.flush()
            answers += [p.stdout.readline().strip() for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(30)
    assert answers == ["ok"] * 12
    with PostgresStore(urls[0], create=False) as store:
        assert store.env == "cartpole" and store.num_clips() == 0


def test_foreign_newer_and_other_env_stores_are_refused_in_one_line(server, pg_url):
    def refused(url: str, match: str, **kw) -> None:
        with pytest.raises(StoreError, match=match) as err:
            PostgresStore(url, **kw)
        assert "\n" not in str(err.value) and OWNER_PASSWORD not in str(err.value)

    refused(pg_url, "not a prefrl store yet: start `prefrl train` first", create=False)
    PostgresStore(pg_url, env="cartpole").close()
    refused(pg_url, "holds clips of env 'cartpole', not 'pendulum'", env="pendulum")
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        refused(pg_url, "schema 99, newer than this prefrl's 4", env="cartpole")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        db.execute("UPDATE meta SET value = 'someone-else' WHERE key = 'app'")
        refused(pg_url, "not a prefrl store .it has no prefrl metadata", env="cartpole")
    foreign = server.url(server.new_store())
    with psycopg.connect(foreign, autocommit=True) as db:
        db.execute("CREATE TABLE orders (id INT)")
        refused(foreign, "not a prefrl store .it has no prefrl metadata")
        tables = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
    assert tables == [("orders",)]  # a database that holds anything is left alone


def test_labeler_roles_answer_their_own_queries_and_nothing_else(server):
    schema = server.new_store()
    pg_url = server.url(schema)
    with PostgresStore(pg_url, env="cartpole") as owner:
        ids = owner.add_clips([_clip(k) for k in range(4)])
        q = owner.add_queries([(ids[0], ids[1]), (ids[2], ids[3]), (ids[1], ids[2])], source="human")
        (r,) = owner.add_ranking_queries([tuple(ids[:3])], source="human")
    ann_role, bob_role = f"ann_{schema}", f"bob_{schema}"  # roles are the cluster's: names unique to this store
    with server.admin(schema) as admin:
        for role in (ann_role, bob_role):
            admin.execute(labeler_role_sql(role, f"{role}'s pw"))
    ann = PostgresStore(server.url(schema, ann_role, f"{ann_role}'s pw"), env="cartpole")
    bob = PostgresStore(server.url(schema, bob_role, f"{bob_role}'s pw"))
    assert ann.path == server.url(schema, ann_role, "").replace(":@", "@")  # no password in messages

    assert ann.claim(ann_role).id == q[0] and bob.claim(bob_role).id == q[1]
    ann.record_labels([(q[0], 1.0)], labeler=ann_role)
    bob.record_labels([(q[1], 0.0)], labeler=bob_role)
    assert ann.get_clips([ids[0]])[0].obs.shape == (5, 4)  # a labeler reads clips to show them
    with pytest.raises(StoreError, match=f"answered by {bob_role}: only that labeler or the store owner"):
        ann.record_labels([(q[1], 1.0)], labeler=ann_role)
    with pytest.raises(StoreError, match=f"answered by {bob_role}"):
        ann.unlabel(q[1], ann_role)
    with pytest.raises(StoreError, match=f"connected as labeler role '{ann_role}'.*not 'bob'.*--labeler {ann_role}"):
        ann.record_labels([(q[2], 1.0)], labeler="bob")
    ann.unlabel(q[0], ann_role)  # her own answer she may undo and give again
    ann.record_labels([(q[0], 0.5)], labeler=ann_role)
    assert ann.claim_ranking(ann_role).id == r
    ann.record_rankings([(r, [0, 2, 1])], labeler=ann_role)
    with pytest.raises(StoreError, match=f"answered by {ann_role}"):
        bob.record_rankings([(r, [1, 0, 2])], labeler=bob_role)
    with pytest.raises(StoreError, match="refused"):
        ann.add_queries([(ids[0], ids[3])], source="ui")  # asking new queries is the owner's
    ann.close(), bob.close()

    with psycopg.connect(server.url(schema, ann_role, f"{ann_role}'s pw"), autocommit=True) as raw:  # past the store's checks
        for statement in (f"UPDATE comparisons SET preference = 1.0 WHERE id = {q[1]}",
                          f"UPDATE comparisons SET status = 'labeled', preference = 0.0, labeler = '{bob_role}'"
                          f" WHERE id = {q[2]}",
                          "DELETE FROM comparisons", "DELETE FROM rankings", "DELETE FROM clips",
                          "TRUNCATE comparisons", "UPDATE clips SET obs = ''::bytea",
                          "INSERT INTO meta VALUES ('x', 'y')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                raw.execute(statement)
    with PostgresStore(pg_url) as owner:
        assert [(c.status, c.preference, c.labeler) for c in owner.comparisons()] == [
            ("labeled", 0.5, ann_role), ("labeled", 0.0, bob_role), ("pending", None, None)]
        assert owner.ranking(r).labeler == ann_role and owner.num_clips() == 4
        owner.unlabel(q[1], "trainer")  # the owner may change anyone's answer
        assert owner.comparison(q[1]).status == "pending"


def test_unreachable_or_refusing_servers_are_one_line_errors(server, pg_url):
    def refused(url: str, match: str) -> None:
        with pytest.raises(StoreError, match=match) as err:
            PostgresStore(url)
        assert "\n" not in str(err.value) and "secret-pw" not in str(err.value)

    closed = _free_port()
    refused(f"postgresql://{OWNER}:secret-pw@127.0.0.1:{closed}/x",
            f"cannot open the store at postgresql://{OWNER}@127.0.0.1:{closed}/x: .*check that the server runs")
    refused(pg_url.replace(OWNER_PASSWORD, "secret-pw"),
            "password authentication failed.*check the user name and password")
    refused(f"postgresql://{OWNER}:secret-pw@127.0.0.1:notaport/x", "cannot open the store at .*postgresql://user@host")
    refused("runs/cartpole/store.sqlite", "cannot open the store at runs/cartpole/store.sqlite")


def test_an_acknowledged_answer_survives_a_server_crash_and_a_lost_server_is_one_line(server, pg_url):
    store = PostgresStore(pg_url, env="cartpole")
    ids = store.add_clips([_clip(0), _clip(1)])
    (q,) = store.add_queries([(ids[0], ids[1])], source="human")
    store.record_labels([(q, 1.0)], labeler="ann")
    server.stop()  # immediately after the call returned, without a checkpoint
    try:
        with pytest.raises(StoreError, match="lost the store at .*check that the server runs") as err:
            store.num_labels()
        assert "\n" not in str(err.value) and OWNER_PASSWORD not in str(err.value)
    finally:
        store.close()
        server.start()
    with PostgresStore(pg_url, env="cartpole") as again:
        assert again.comparison(q).preference == 1.0 and again.num_labels() == 1


def test_labeler_role_sql_quotes_and_refuses_odd_names():
    sql = labeler_role_sql("ann", "it's")
    assert "CREATE ROLE \"ann\" LOGIN PASSWORD 'it''s';" in sql and "DELETE" not in sql and "INSERT" not in sql
    assert "PASSWORD" not in labeler_role_sql("cert_user")
    with pytest.raises(ValueError, match="letters, digits and _"):
        labeler_role_sql('ann"; DROP TABLE clips; --')


def _no_password(url: str) -> str:
    return url.replace(f":{OWNER_PASSWORD}@", "@")


def test_a_run_keeps_its_labels_on_the_server_and_every_command_finds_them(server, pg_url, tmp_path, monkeypatch,
                                                                            capsys):
    """`prefrl train --store URL`: the clips and labels on the server, not in the run directory;
    export, ratings and import find them through the run's config.json, or --store."""
    import json

    from prefrl.cli import main

    monkeypatch.setenv("PGPASSWORD", OWNER_PASSWORD)  # libpq's own: config.json records no password
    url, run = _no_password(pg_url), tmp_path / "run"
    assert main(["train", "cartpole", "--store", url, "--labels", "12", "--steps", "2048", "--set",
                 "eval_episodes=1", "--no-progress", "--run-dir", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labels_used"] == 12 and not (run / "store.sqlite").exists()
    assert json.loads((run / "config.json").read_text())["store"] == url
    with PostgresStore(pg_url, create=False) as store:
        assert store.num_labels() == 12 and store.env == "cartpole"
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "out")]) == 0
    rows = (tmp_path / "out" / "comparisons.jsonl").read_text().splitlines()
    assert sum(json.loads(r)["status"] == "labeled" for r in rows) == 12
    assert main(["ratings", str(run), "--store", url]) == 0
    # a new run on a store that holds another's clips is refused, before any directory is made
    assert main(["train", "cartpole", "--store", url, "--run-dir", str(tmp_path / "second")]) == 2
    assert "already holds" in capsys.readouterr().err and not (tmp_path / "second").exists()


@pytest.mark.parametrize("argv, message", [
    (["--store", "mysql://a@b/c"], "--store 'mysql://a@b/c' is not a PostgreSQL URL"),
    (["--store", "postgresql://a:pw@b/c"], "the URL holds a password"),
    (["--store", "postgresql://a@b/c", "--reward", "true"], "--store needs --reward learned"),
])
def test_a_bad_store_url_is_one_line(tmp_path, capsys, argv, message):
    from prefrl.cli import main

    assert main(["train", "cartpole", *argv, "--run-dir", str(tmp_path / "run")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0], err


def test_people_on_other_machines_label_a_waiting_trainer_over_tcp(server, pg_url, tmp_path, monkeypatch):
    """A --feedback human trainer on the server's store; two scripted labelers, each a process of its
    own with its own connection over TCP (as windows on other machines: `prefrl label --store URL`),
    answer it."""
    import json
    import signal

    from prefrl.cli import main

    monkeypatch.setenv("PGPASSWORD", OWNER_PASSWORD)
    url, run = _no_password(pg_url), tmp_path / "run"
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    labelers = [subprocess.Popen([sys.executable, "-m", "prefrl.labeling_ui.scripted", url, name], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("ann", "bob")]
    # labels_used and rm_labels both count the final fit (an answer landing during the evaluation is in
    # neither: tests/test_cli.py). 8,192 steps leave all 16 answered well before learning ends.
    try:
        assert main(["train", "cartpole", "--store", url, "--feedback", "human", "--labels", "16", "--steps", "8192",
                     "--set", "eval_episodes=1", "--no-progress", "--run-dir", str(run)]) == 0
    finally:
        for labeler in labelers:
            labeler.send_signal(signal.SIGTERM)
    outputs = [labeler.communicate(timeout=60) for labeler in labelers]
    assert [labeler.returncode for labeler in labelers] == [0, 0], outputs
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labels_used"] == summary["rm_labels"] >= 12
    with PostgresStore(pg_url, create=False) as store:
        by = [c.labeler for c in store.comparisons("labeled")]
    assert set(by) <= {"ann", "bob"} and len(by) == summary["labels_used"]
    answered = [int(out.split(": ")[1].split()[0]) for out, _ in outputs]
    assert sum(answered) >= len(by) and all(answered), outputs  # both labeled, each pair once


# The store's fault drills (experiments/drills.py), as tests/test_faults.py runs them on SQLite.

@pytest.mark.slow
def test_a_killed_writer_never_loses_an_acknowledged_label_on_the_server(pg_url):
    make_store(pg_url, 20_000).close()
    result = kill_writer_drill(pg_url, kills=10, seed=0, max_wait=0.5)
    assert result["problems"] == [] and result["errors"] == [] and result["acknowledged"] > 0


@pytest.mark.slow
def test_two_labeling_windows_a_burst_writer_and_the_trainer_share_one_server_store(pg_url):
    make_store(pg_url, 20_000).close()
    result = burst_drill(pg_url, seconds=4, rate=100)
    assert result["errors"] == [] and result["problems"] == []
    acked = result["acknowledged"]
    assert acked["ui-1"] > 0 and acked["ui-2"] > 0
    # The burst writer, paced at 20x the windows' rate, is not held to theirs by the store: a ratio
    # within the run, not a count against the clock (the count falls on a loaded machine).
    assert acked["burst"] > 3 * max(acked["ui-1"], acked["ui-2"]), acked
    with psycopg.connect(pg_url) as db:  # the trainer's batches of 20 queries, each in one commit
        asked = db.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0] - 20_000
    assert asked >= 20 and asked % 20 == 0, asked
    # the check finds what it is there to find: a label lost, a pair answered by another, a broken row
    with psycopg.connect(pg_url, autocommit=True) as db:
        gone, other = [r[0] for r in db.execute("SELECT id FROM comparisons WHERE status = 'labeled' ORDER BY id"
                                                " LIMIT 2").fetchall()]
        db.execute("UPDATE comparisons SET status = 'pending', preference = NULL, labeler = NULL, labeled_at = NULL"
                   " WHERE id = %s", (gone,))
        db.execute("UPDATE comparisons SET labeler = NULL WHERE id = %s", (other,))
        who = db.execute("SELECT labeler FROM comparisons WHERE id = %s", (other,)).fetchone()[0]
    problems = check_store(pg_url, {gone: "ui-1", other: "nobody"})
    assert len(problems) == 3 and "1 acknowledged labels missing" in problems[1], problems
    assert "answered comparisons without a labeler" in problems[0] and "another labeler" in problems[2], problems
    assert who is None and OWNER_PASSWORD not in str(problems)


def test_prefrl_label_opens_a_server_store_by_its_url_alone(server, pg_url, tmp_path):
    """`prefrl label --store URL` on a machine with no run directory: the window claims the waiting
    pair over TCP, and SIGTERM ends it with the pair released and nothing answered."""
    import signal

    with PostgresStore(pg_url, env="cartpole") as store:
        ids = store.add_clips([_clip(0, length=20), _clip(1, length=20)])
        (query,) = store.add_queries([(ids[0], ids[1])], source="human")
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PGPASSWORD": OWNER_PASSWORD}
    window = subprocess.Popen([sys.executable, "-m", "prefrl", "label", "--store", _no_password(pg_url),
                               "--labeler", OWNER], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    def claimed_by():
        with psycopg.connect(pg_url, autocommit=True) as db:
            return db.execute("SELECT claimed_by FROM comparisons WHERE id = %s", (query,)).fetchone()[0]

    try:
        for _ in range(600):  # polls, 0.1 s apart
            if claimed_by() == OWNER or window.poll() is not None:
                break
            time.sleep(0.1)
        assert claimed_by() == OWNER, window.communicate(timeout=10)
        window.send_signal(signal.SIGTERM)  # the moment the pair is claimed, before the window's loop runs
        out, err = window.communicate(timeout=60)
    finally:
        if window.poll() is None:
            window.kill()
    assert window.returncode == 128 + signal.SIGTERM and "Traceback" not in err, (out, err)
    with PostgresStore(pg_url, create=False) as store:
        assert store.comparison(query).status == "pending" and claimed_by() is None  # released, not answered
    assert not list(tmp_path.iterdir())  # no run directory, no store file made
