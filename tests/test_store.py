import sqlite3

import numpy as np
import pytest

from prefrl.clips import Clip
from prefrl.errors import StoreError
from prefrl.store import PreferenceStore


def _clip(seed: int, length: int = 5) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(rng.normal(size=(length, 4)).astype(np.float32), rng.integers(0, 2, size=length),
                rng.normal(size=length).astype(np.float32), timestep=seed)


def test_clips_round_trip(tmp_path):
    with PreferenceStore(tmp_path / "s.sqlite", env="cartpole") as store:
        clips = [_clip(0), _clip(1)]
        ids = store.add_clips(clips)
        back = store.get_clips(ids[::-1])
    assert [c.clip_id for c in back] == ids[::-1]
    np.testing.assert_array_equal(back[1].obs, clips[0].obs)
    np.testing.assert_array_equal(back[0].actions, clips[1].actions)
    assert back[1].true_return == pytest.approx(clips[0].true_return)


def test_labels_persist_and_skips_do_not_count(tmp_path):
    path = tmp_path / "s.sqlite"
    with PreferenceStore(path, env="cartpole") as store:
        a, b, c = store.add_clips([_clip(0), _clip(1), _clip(2)])
        q = store.add_queries([(a, b), (b, c), (a, c)], source="oracle")
        store.record_labels([(q[0], 1.0), (q[1], None)], labeler="ann")
    with PreferenceStore(path, env="cartpole") as store:
        assert store.num_labels() == 1
        assert [x.status for x in store.comparisons()] == ["labeled", "skipped", "pending"]
        assert store.comparisons("labeled")[0].preference == 1.0
        assert store.comparisons("labeled")[0].labeler == "ann"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bad_preference_is_refused_and_nothing_half_written(tmp_path):
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        a, b = store.add_clips([_clip(0), _clip(1)])
        q = store.add_queries([(a, b), (b, a)], source="oracle")
        with pytest.raises(StoreError, match="0, 0.5 or 1"):
            store.record_labels([(q[0], 1.0), (q[1], 0.7)], labeler="x")
        assert store.num_labels() == 0


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not a database at all" * 10)
    with pytest.raises(StoreError, match="not a readable prefrl store"):
        PreferenceStore(path)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not a prefrl store"):
        PreferenceStore(other)


def test_newer_schema_and_other_env_are_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    PreferenceStore(path, env="cartpole").close()
    with pytest.raises(StoreError, match="holds clips of env 'cartpole'"):
        PreferenceStore(path, env="pendulum")
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema 99, newer"):
        PreferenceStore(path, env="cartpole")


def test_two_labelers_never_claim_the_same_pair_and_stale_claims_lapse(tmp_path):
    path = tmp_path / "s.sqlite"
    with PreferenceStore(path, env="cartpole") as store:
        ids = store.add_clips([_clip(i) for i in range(4)])
        q = store.add_queries([(ids[0], ids[1]), (ids[2], ids[3])], source="human")
    ann, bob = PreferenceStore(path), PreferenceStore(path)  # two windows, two connections
    a, b = ann.claim("ann"), bob.claim("bob")
    assert {a.id, b.id} == set(q)
    assert ann.claim("carl") is None  # both pairs are claimed
    assert ann.claim("ann").id == a.id  # a labeler keeps their own claim
    assert bob.claim("carl", ttl=0.0).id == min(q)  # claims older than ttl lapse: carl takes the oldest
    bob.release(min(q), "carl")
    assert ann.claim("dora").id == min(q)
    ann.close(), bob.close()


def test_a_schema_1_store_is_migrated_with_its_labels(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE clips (id INTEGER PRIMARY KEY, length INTEGER NOT NULL, true_return REAL NOT NULL,
            timestep INTEGER NOT NULL, obs BLOB NOT NULL, actions BLOB NOT NULL, true_rewards BLOB NOT NULL,
            frames BLOB, created REAL NOT NULL);
        CREATE TABLE comparisons (id INTEGER PRIMARY KEY, left_id INTEGER NOT NULL, right_id INTEGER NOT NULL,
            status TEXT NOT NULL, preference REAL, source TEXT NOT NULL, labeler TEXT, created REAL NOT NULL,
            labeled_at REAL);
        INSERT INTO meta VALUES ('app', 'prefrl'), ('schema_version', '1'), ('env', 'cartpole');
        INSERT INTO comparisons VALUES (1, 1, 2, 'labeled', 1.0, 'oracle', 'oracle', 0, 0);
        INSERT INTO comparisons VALUES (2, 1, 2, 'pending', NULL, 'human', NULL, 0, NULL);
    """)
    db.close()
    with PreferenceStore(path, env="cartpole") as store:
        assert store.num_labels() == 1 and store.comparison(1).preference == 1.0
        assert store.claim("ann").id == 2
        assert store.rankings() == []  # schema 3's rankings table was added, with schema 4's claims
        assert store.claim_ranking("ann") is None
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "4"


def test_a_schema_3_store_gets_claims_on_rankings_and_keeps_them(tmp_path):
    path = tmp_path / "v3.sqlite"
    with PreferenceStore(path, env="cartpole") as store:
        ids = store.add_clips([_clip(k) for k in range(3)])
        done, waiting = store.add_ranking_queries([tuple(ids), tuple(ids[::-1])], source="oracle")
        store.record_rankings([(done, [1, 0, 2])], labeler="oracle")
    db = sqlite3.connect(path)  # back to schema 3: no claim columns on rankings
    db.executescript("""
        CREATE TABLE r3 AS SELECT id, clip_ids, status, ranking, source, labeler, created, labeled_at FROM rankings;
        DROP TABLE rankings; ALTER TABLE r3 RENAME TO rankings;
        UPDATE meta SET value = '3' WHERE key = 'schema_version'; PRAGMA user_version = 3;
    """)
    db.close()
    with PreferenceStore(path, create=False) as store:
        assert store.ranking(done).ranking == (1, 0, 2) and store.num_pending() == 1
        assert store.claim_ranking("ann").id == waiting and store.claim_ranking("bob") is None


def test_two_processes_opening_a_new_store_at_once_both_succeed(tmp_path):
    import threading

    errors = []
    for k in range(20):
        path = tmp_path / f"s{k}.sqlite"
        barrier = threading.Barrier(2)

        def open_store():
            barrier.wait()
            try:
                PreferenceStore(path, env="cartpole").close()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert errors == []
    with pytest.raises(StoreError, match="not a prefrl store yet"):
        PreferenceStore(tmp_path / "missing.sqlite", create=False)


def test_rankings_round_trip_count_as_labels_and_refuse_a_non_permutation(tmp_path):
    with PreferenceStore(tmp_path / "s.sqlite", env="cartpole") as store:
        ids = store.add_clips([_clip(k) for k in range(4)])
        r1, r2 = store.add_ranking_queries([(ids[0], ids[1], ids[2]), (ids[3], ids[2], ids[1])], source="oracle")
        assert [r.status for r in store.rankings()] == ["pending", "pending"] and store.num_labels() == 0
        with pytest.raises(StoreError, match="positions 0..2 once each"):
            store.record_rankings([(r1, [0, 0, 1])], labeler="oracle")
        store.record_rankings([(r1, [2, 0, 1]), (r2, None)], labeler="oracle")
        labeled = store.rankings("labeled")
        assert len(labeled) == 1 and labeled[0].ordered == (ids[2], ids[0], ids[1])
        assert store.rankings("skipped")[0].id == r2 and store.num_labels() == 1
        assert store.ranking_records()[0]["ranking"] == [2, 0, 1]


def test_rankings_are_claimed_released_and_undone_as_pairs_are(tmp_path):
    with PreferenceStore(tmp_path / "s.sqlite", env="cartpole") as store:
        ids = store.add_clips([_clip(k) for k in range(4)])
        first, second = store.add_ranking_queries([tuple(ids[:3]), tuple(ids[1:])], source="human")
        assert store.num_pending() == 2
        assert store.claim_ranking("ann").id == first and store.claim_ranking("bob").id == second
        assert store.claim_ranking("cy") is None  # both held
        store.release_ranking(second, "bob")
        assert store.claim_ranking("cy").id == second
        store.record_rankings([(first, [2, 0, 1])], labeler="ann")
        assert store.num_labels() == 1 and store.num_pending() == 1
        store.unlabel_ranking(first, "ann")
        assert store.ranking(first).status == "pending" and store.num_labels() == 0
        assert store.claim_ranking("bob") is None and store.claim_ranking("ann").id == first
