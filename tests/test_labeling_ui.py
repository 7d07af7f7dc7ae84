"""The labeling UI, headless: key events in, preferences in the store out."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"

import numpy as np  # noqa: E402
import pygame  # noqa: E402
import pytest  # noqa: E402

from prefrl.clips import Clip  # noqa: E402
from prefrl.labeling_ui.app import LabelingApp  # noqa: E402
from prefrl.labeling_ui.frames import clip_frames  # noqa: E402
from prefrl.labeling_ui.session import LabelingSession  # noqa: E402
from prefrl.store import PreferenceStore  # noqa: E402


def _atari_clip(seed, length=5):
    rng = np.random.default_rng(seed)
    return Clip(rng.integers(0, 255, (length, 4, 84, 84), dtype=np.uint8), np.zeros(length, np.int64),
                np.zeros(length, np.float32))


def _store(tmp_path, n_queries=3):
    store = PreferenceStore(tmp_path / "store.sqlite", env="pong")
    ids = store.add_clips([_atari_clip(i) for i in range(2 * n_queries)])
    queries = store.add_queries([(ids[2 * k], ids[2 * k + 1]) for k in range(n_queries)], source="human")
    return store, queries


def _key(app, key):
    app.handle_event(pygame.event.Event(pygame.KEYDOWN, key=key))


@pytest.fixture(autouse=True)
def _pygame():
    pygame.display.init()
    pygame.font.init()
    yield
    pygame.display.quit()


@pytest.mark.parametrize("key, preference", [
    (pygame.K_LEFT, 1.0), (pygame.K_a, 1.0), (pygame.K_RIGHT, 0.0), (pygame.K_d, 0.0),
    (pygame.K_DOWN, 0.5), (pygame.K_s, 0.5), (pygame.K_EQUALS, 0.5),
])
def test_each_answer_key_records_its_preference(tmp_path, key, preference):
    store, queries = _store(tmp_path)
    app = LabelingApp(LabelingSession(store, "ann", "pong"))
    assert app.session.current.id == queries[0]
    _key(app, key)
    c = store.comparison(queries[0])
    assert (c.status, c.preference, c.labeler) == ("labeled", preference, "ann")
    assert app.session.current.id == queries[1] and app.session.labeled == 1


def test_space_records_a_skip_that_is_never_a_label(tmp_path):
    store, queries = _store(tmp_path)
    app = LabelingApp(LabelingSession(store, "ann", "pong"))
    _key(app, pygame.K_SPACE)
    assert store.comparison(queries[0]).status == "skipped" and store.num_labels() == 0


@pytest.mark.parametrize("undo", [pygame.K_u, pygame.K_BACKSPACE])
def test_undo_takes_the_last_answer_back_and_shows_that_pair_again(tmp_path, undo):
    store, queries = _store(tmp_path)
    app = LabelingApp(LabelingSession(store, "ann", "pong"))
    _key(app, pygame.K_LEFT)
    _key(app, pygame.K_SPACE)
    _key(app, undo)
    assert store.comparison(queries[1]).status == "pending" and app.session.current.id == queries[1]
    _key(app, undo)
    assert store.comparison(queries[0]).status == "pending" and app.session.current.id == queries[0]
    assert store.num_labels() == 0
    _key(app, undo)  # nothing left to undo: no change
    assert app.session.current.id == queries[0]
    _key(app, pygame.K_RIGHT)
    assert store.comparison(queries[0]).preference == 0.0


def test_posted_keys_through_the_window_loop_and_quit_loses_nothing(tmp_path):
    store, queries = _store(tmp_path)
    app = LabelingApp(LabelingSession(store, "ann", "pong"), clip_fps=15)
    for key in (pygame.K_LEFT, pygame.K_d, pygame.K_q):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
    app.run(max_frames=50)
    assert app.session.done
    with PreferenceStore(tmp_path / "store.sqlite") as fresh:  # what another process would read
        assert [(c.id, c.preference) for c in fresh.comparisons("labeled")] == [(queries[0], 1.0), (queries[1], 0.0)]
        assert fresh.claim("bob").id == queries[2]  # the pair on screen at quit was released


def test_pause_stops_playback_and_drawing_reads_state_only(tmp_path):
    store, _ = _store(tmp_path)
    app = LabelingApp(LabelingSession(store, "ann", "pong"), clip_fps=10, clip_width=252)
    surface = pygame.Surface(app.size())
    from prefrl.labeling_ui.app import FOOTER, HEADER, HELP, MARGIN

    # 84x84 frames scaled x3, under the status lines; tall enough for the help screen
    assert app.size() == (3 * MARGIN + 2 * 252, max(HEADER + 252 + FOOTER, HEADER - 20 + 22 * len(HELP)) + MARGIN)
    app.update(0.5)
    assert app.step == pytest.approx(5.0)
    _key(app, pygame.K_p)
    app.update(0.5)
    assert app.session.paused and app.step == pytest.approx(5.0)
    before = (app.session.current.id, app.session.labeled, app.step)
    app.draw(surface)
    assert (app.session.current.id, app.session.labeled, app.step) == before


def test_two_windows_on_one_store_are_never_shown_the_same_pair(tmp_path):
    store, queries = _store(tmp_path, n_queries=2)
    other = PreferenceStore(tmp_path / "store.sqlite")
    ann, bob = LabelingSession(store, "ann", "pong"), LabelingSession(other, "bob", "pong")
    assert {ann.current.id, bob.current.id} == set(queries)
    ann.apply("left")
    assert ann.current is None  # the only other pair is bob's
    bob.apply("right")
    assert store.num_labels() == 2
    other.close()


def test_a_finished_run_offers_new_pairs_of_its_clips(tmp_path):
    store = PreferenceStore(tmp_path / "store.sqlite", env="pong")
    store.add_clips([_atari_clip(i) for i in range(3)])
    session = LabelingSession(store, "ann", "pong", new_pairs=True)
    for _ in range(3):  # three clips: three distinct pairs
        session.apply("equal")
    assert session.current is None and store.num_labels() == 3
    pairs = {frozenset((c.left_id, c.right_id)) for c in store.comparisons()}
    assert len(pairs) == 3


@pytest.mark.parametrize("env", ["cartpole", "pendulum", "acrobot", "mountaincar"])
def test_the_window_outlives_every_answer_on_classic_control_clips(tmp_path, env):
    # The window died after its first label: drawing a clip made and closed a gymnasium env, and
    # classic-control close() calls pygame.display.quit() and pygame.quit().
    dim = {"cartpole": 4, "pendulum": 3, "acrobot": 6, "mountaincar": 2}[env]
    rng = np.random.default_rng(0)
    clips = [Clip(rng.uniform(-0.1, 0.1, (4, dim)).astype(np.float32), np.zeros(4, np.int64), np.zeros(4, np.float32))
             for _ in range(6)]
    store = PreferenceStore(tmp_path / "store.sqlite", env=env)
    ids = store.add_clips(clips)
    queries = store.add_queries([(ids[2 * k], ids[2 * k + 1]) for k in range(3)], source="human")
    app = LabelingApp(LabelingSession(store, "ann", env), clip_fps=15)
    for key in (pygame.K_LEFT, pygame.K_RIGHT, pygame.K_s, pygame.K_q):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
    app.run(max_frames=80)  # before the fix: pygame.error "display Surface quit" after the first answer
    with PreferenceStore(tmp_path / "store.sqlite") as fresh:
        assert [(c.id, c.preference, c.labeler) for c in fresh.comparisons("labeled")] == [
            (queries[0], 1.0, "ann"), (queries[1], 0.0, "ann"), (queries[2], 0.5, "ann")]


def test_classic_control_clips_are_rendered_from_their_states():
    obs = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.2, 0.0]], np.float32)
    frames = clip_frames(Clip(obs, np.zeros(2, np.int64), np.ones(2, np.float32)), "cartpole")
    assert frames.shape == (2, 400, 600, 3) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[1])  # the cart moved


@pytest.mark.parametrize("rank_size", [2, 3])
@pytest.mark.slow
def test_train_with_human_feedback_waits_for_and_learns_from_the_ui(tmp_path, capsys, monkeypatch, rank_size):
    import dataclasses

    from prefrl import presets
    from prefrl.labeling_ui.scripted import ScriptedLabeler
    from prefrl import TrainConfig, train

    # Queries in batches of 2, so that several are asked and answered while PPO runs.
    monkeypatch.setitem(presets.PRESETS, "cartpole", dataclasses.replace(presets.PRESETS["cartpole"], label_batch=2))
    run = tmp_path / "run"
    labeler = ScriptedLabeler(run / "store.sqlite", labeler="ann")
    labeler.start()
    summary = train(TrainConfig("cartpole", labels=12, steps=8192, run_dir=str(run), feedback="human",
                                rank_size=rank_size, progress_bar=False))
    labeler.stop()
    assert labeler.error is None
    assert "prefrl label" in capsys.readouterr().out  # it said how to start the UI
    with PreferenceStore(run / "store.sqlite") as store:
        initial = round(12 * presets.PRESETS["cartpole"].initial_fraction)
        # the initial labels before RL, then more as the queries were answered during RL
        assert summary["labels_used"] > initial and summary["rm_val_accuracy"] is not None
        labeled = store.comparisons("labeled") if rank_size == 2 else store.rankings("labeled")
        assert len(labeled) == store.num_labels() == summary["labels_used"]
        assert {c.labeler for c in labeled} == {"ann"} and {c.source for c in labeled} == {"human"}
        if rank_size == 3:  # each one ranking of 3 clips, by the number keys
            assert all(len(r.clip_ids) == 3 and sorted(r.ranking) == [0, 1, 2] for r in labeled)


@pytest.mark.parametrize("display", [None, ":987"])
def test_with_no_display_label_says_so_in_one_line_and_claims_nothing(tmp_path, display):
    import subprocess
    import sys

    store, queries = _store(tmp_path)
    store.close()
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY")}
    if display:  # a display no X server answers on
        env["DISPLAY"] = display
    done = subprocess.run([sys.executable, "-m", "prefrl", "label", str(tmp_path), "--labeler", "ann"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prefrl: error: no display to open the labeling window on")
    assert (f"DISPLAY={display}" if display else "DISPLAY is not set") in lines[0]
    with PreferenceStore(tmp_path / "store.sqlite", create=False) as fresh:
        assert fresh.claim("bob").id == queries[0]  # the pair it claimed was released


def test_the_help_screen_closes_on_any_key_without_answering(tmp_path):
    store, queries = _store(tmp_path)
    app = LabelingApp(LabelingSession(store, "ann", "pong"), clip_fps=10, help=True)
    app.update(1.0)
    assert app.step == 0.0  # clips wait behind the help screen
    _key(app, pygame.K_LEFT)  # closes the help: not an answer
    assert not app.help and store.num_labels() == 0 and app.session.current.id == queries[0]
    _key(app, pygame.K_LEFT)
    assert store.comparison(queries[0]).preference == 1.0
    _key(app, pygame.K_h)
    assert app.help and store.num_labels() == 1


def test_playback_speed_and_replay(tmp_path):
    store, _ = _store(tmp_path)
    app = LabelingApp(LabelingSession(store, "ann", "pong"), clip_fps=10)
    app.update(1.0)
    assert app.step == pytest.approx(10.0)
    _key(app, pygame.K_LEFTBRACKET)
    app.update(1.0)
    assert app.speed == 0.5 and app.step == pytest.approx(15.0)
    for _ in range(9):  # clamped at the fastest
        _key(app, pygame.K_RIGHTBRACKET)
    app.update(1.0)
    assert app.speed == 4.0 and app.step == pytest.approx(55.0)
    _key(app, pygame.K_r)
    assert app.step == 0.0 and store.num_labels() == 0  # view keys never touch the store


def test_the_quit_summary_counts_answers_skips_and_the_median_time(tmp_path, monkeypatch):
    import prefrl.labeling_ui.session as session_module

    now = [100.0]
    monkeypatch.setattr(session_module.time, "monotonic", lambda: now[0])
    store, _ = _store(tmp_path, n_queries=4)
    session = LabelingSession(store, "ann", "pong")  # the first pair shown at 100
    now[0] = 102.0
    session.apply("left")  # 2 s; the next pair shown at 102
    now[0] = 103.0
    session.apply("skip")  # 1 s
    assert session.took == [2.0, 1.0]  # the two readings of the patched clock above
    line = session.summary()
    assert line.startswith("2 answers from ann (1 can't-tell) in ") and "median 1.5 s an answer" in line
    assert str(store.path) in line


def test_the_waiting_line_says_who_waits(tmp_path):
    store, _ = _store(tmp_path, n_queries=3)
    live = LabelingApp(LabelingSession(store, "ann", "pong"))
    assert live.waiting_line() == "the trainer is waiting for 3 answers"  # the pair on screen counts
    finished = LabelingApp(LabelingSession(store, "bob", "pong", new_pairs=True))
    assert finished.waiting_line().startswith("3 queries waiting; the run is finished")


def _ranking_store(tmp_path, k=3, n_queries=2):
    store = PreferenceStore(tmp_path / "store.sqlite", env="pong")
    ids = store.add_clips([_atari_clip(i) for i in range(k * n_queries)])
    queries = store.add_ranking_queries([tuple(ids[k * q:k * (q + 1)]) for q in range(n_queries)], source="human")
    return store, queries


@pytest.mark.parametrize("k", [3, 4])
def test_number_keys_rank_the_clips_best_first_and_store_one_ranking(tmp_path, k):
    store, queries = _ranking_store(tmp_path, k)
    app = LabelingApp(LabelingSession(store, "ann", "pong"), clip_width=168)
    assert app.session.ranking and len(app.session.frames) == k
    assert app.size()[0] == (k + 1) * 16 + k * 240  # k clips side by side
    picks = [pygame.K_3, pygame.K_1, pygame.K_4][:k - 1]
    for key in picks:  # the last clip left is placed last without a key
        assert store.rankings("labeled") == []
        _key(app, key)
    (r,) = store.rankings("labeled")
    expected = [2, 0, 3, 1][:k] if k == 4 else [2, 0, 1]
    assert r.id == queries[0] and list(r.ranking) == expected and r.labeler == "ann"
    assert app.session.current.id == queries[1] and app.session.order == []
    app.draw(pygame.Surface(app.size()))


def test_in_a_ranking_undo_takes_back_a_pick_then_the_last_answer_and_bad_keys_do_nothing(tmp_path):
    store, queries = _ranking_store(tmp_path, 3)
    app = LabelingApp(LabelingSession(store, "ann", "pong"))
    for key in (pygame.K_LEFT, pygame.K_DOWN, pygame.K_4):  # not answers to a ranking of 3
        _key(app, key)
    assert app.session.order == [] and store.num_labels() == 0
    _key(app, pygame.K_2)
    _key(app, pygame.K_2)  # placed already
    assert app.session.order == [1]
    _key(app, pygame.K_u)
    assert app.session.order == [] and app.session.current.id == queries[0]
    _key(app, pygame.K_3)
    _key(app, pygame.K_2)
    assert [list(r.ranking) for r in store.rankings("labeled")] == [[2, 1, 0]]
    _key(app, pygame.K_u)  # no pick in progress: the stored ranking is taken back
    assert store.rankings("labeled") == [] and app.session.current.id == queries[0]
    _key(app, pygame.K_SPACE)  # can't tell: skipped, not a label
    assert store.ranking(queries[0]).status == "skipped" and store.num_labels() == 0


def test_a_finished_run_offers_new_groups_to_rank(tmp_path):
    store = PreferenceStore(tmp_path / "store.sqlite", env="pong")
    store.add_clips([_atari_clip(i) for i in range(5)])
    session = LabelingSession(store, "ann", "pong", new_pairs=True, rank_size=3)
    assert session.ranking and len(session.clips) == 3
    session.apply("pick1")
    session.apply("pick2")
    (r,) = store.rankings("labeled")
    assert r.source == "ui" and list(r.ranking) == [0, 1, 2]
    with pytest.raises(ValueError, match="rank_size 5 must be 2 to 4"):
        LabelingSession(store, "bob", "pong", rank_size=5)


def test_a_signal_as_the_first_pair_is_claimed_ends_label_as_a_signal_and_releases_the_pair(tmp_path):
    """SIGTERM the moment `prefrl label` has claimed its first pair, before the window is open: the
    handlers are in place before anything is claimed (or SDL, started by a renderer, has put in its
    own), so it ends as a stop by SIGTERM (143, one line), not as a closed window (0) or a kill,
    and the pair is free again."""
    import signal
    import subprocess
    import sys

    store, queries = _store(tmp_path)
    store.close()
    script = (
        "import os, signal, sys\n"
        "from prefrl.labeling_ui import session\n"
        "claimed = session.LabelingSession.__post_init__\n"
        "def post_init(self):\n"
        "    claimed(self)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "session.LabelingSession.__post_init__ = post_init\n"
        "from prefrl.cli import main\n"
        f"sys.exit(main(['label', {str(tmp_path)!r}, '--labeler', 'tester']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    assert done.returncode == 128 + signal.SIGTERM, (done.returncode, done.stderr[-2000:])
    assert done.stderr.strip().splitlines()[-1] == "prefrl label: stopped by SIGTERM; every answer given is kept"
    with PreferenceStore(tmp_path / "store.sqlite", create=False) as store:
        assert store.claim("another").id == queries[0]
