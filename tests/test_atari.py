import cv2
import gymnasium as gym
import numpy as np
import pytest

from prefrl.envs import ATARI_SUITE, UnknownEnvError, make_env, resolve
from prefrl.envs.atari import DEFAULT_SCORE_MASK, SCORE_MASKS, ScoreMask, mask_frame


class _Screen(gym.Env):
    """A fake 210×160 RGB screen whose pixels are set by the test."""

    observation_space = gym.spaces.Box(0, 255, (210, 160, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.frame = np.zeros((210, 160, 3), np.uint8)

    def reset(self, *, seed=None, options=None):
        return self.frame.copy(), {}

    def step(self, action):
        return self.frame.copy(), 0.0, False, False, {}


def test_frames_that_differ_only_in_the_score_look_the_same():
    env = ScoreMask(_Screen(), SCORE_MASKS["Pong"])
    rng = np.random.default_rng(0)
    env.unwrapped.frame = rng.integers(0, 255, (210, 160, 3), dtype=np.uint8)
    before = env.step(0)[0]
    env.unwrapped.frame[3:20, 40:60] = 255  # a new digit in the score band
    after = env.step(0)[0]
    np.testing.assert_array_equal(before, after)
    env.unwrapped.frame[100, 80] ^= 1  # a change in play is still seen
    assert not np.array_equal(env.step(0)[0], after)


def test_mask_scales_to_any_frame_size_rounding_outward():
    frame = np.full((84, 84), 7, np.uint8)
    out = mask_frame(frame, [(0, 24, 0, 160)])
    assert (out[:10] == 0).all() and (out[10:] == 7).all()  # 24 * 84/210 = 9.6 -> rows 0..9


def test_bad_rectangle_is_refused():
    with pytest.raises(ValueError, match=r"ScoreMask: \(0, 300, 0, 160\) is not"):
        ScoreMask(_Screen(), [(0, 300, 0, 160)])


@pytest.mark.parametrize("name", list(ATARI_SUITE))
def test_each_named_game_builds_steps_and_hides_its_score(name):
    env = make_env(name, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(8):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    game = resolve(name).gym_id.split("/")[1].split("-")[0]
    blank = mask_frame(np.ones((84, 84), np.uint8), SCORE_MASKS[game]) == 0
    assert (obs[:, blank] == 0).all()  # the agent sees nothing in the score area
    assert obs[:, ~blank].any()  # and the game elsewhere
    frame = env.render()
    people = mask_frame(np.ones(frame.shape[:2], np.uint8), SCORE_MASKS[game]) == 0
    assert (frame[people] == 0).all()  # nor does a person labeling its frames
    env.close()


# RAM bytes that hold a score digit pair, found by diffing RAM across a point scored.
SCORE_RAM = {"pong": 13, "breakout": 77, "ALE/Atlantis-v5": 34, "ALE/Asterix-v5": 96, "ALE/CrazyClimber-v5": 2,
             "ALE/ChopperCommand-v5": 110}


@pytest.mark.parametrize("name", list(SCORE_RAM))
def test_changing_only_the_score_in_ram_leaves_the_agent_view_unchanged(name):
    """Two emulator states that differ only in the score byte: the screens differ, the masked
    84×84 frames do not."""
    import ale_py

    gym.register_envs(ale_py)  # run alone, no earlier test has registered ALE's ids
    env = gym.make(resolve(name).gym_id, frameskip=4, repeat_action_probability=0.0)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(30):
        env.step(env.action_space.sample())
    ale = env.unwrapped.ale
    state = ale.cloneState()
    screens = []
    for value in (1, 7):
        ale.restoreState(state)
        ale.setRAM(SCORE_RAM[name], value)
        screens.append(env.step(0)[0])
    assert not np.array_equal(screens[0], screens[1])
    game = resolve(name).gym_id.split("/")[1].split("-")[0]
    seen = [mask_frame(cv2.resize(cv2.cvtColor(s, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA),
                       SCORE_MASKS[game]) for s in screens]
    np.testing.assert_array_equal(seen[0], seen[1])


def test_any_ale_id_works_with_the_default_mask_and_unknown_ones_fail():
    assert "Boxing" not in SCORE_MASKS
    spec = resolve("ALE/Boxing-v5")
    assert spec.atari and spec.on_termination == "reset"
    env = make_env("ALE/Boxing-v5")
    obs, _ = env.reset(seed=0)
    blank = mask_frame(np.ones((84, 84), np.uint8), DEFAULT_SCORE_MASK) == 0
    assert (obs[:, blank] == 0).all()
    with pytest.raises(UnknownEnvError, match="ALE/NoSuchGame-v5"):
        resolve("ALE/NoSuchGame-v5")


@pytest.fixture
def tiny_pong(monkeypatch):
    """Pong's preset cut to a run of seconds."""
    import dataclasses

    from prefrl import presets

    atari = presets.ATARI_PRESET
    tiny = dataclasses.replace(atari, n_envs=2, random_steps=200, label_batch=2, eval_episodes=1, candidate_steps=500,
                               ppo={**atari.ppo, "n_steps": 64, "batch_size": 64, "n_epochs": 1})
    monkeypatch.setitem(presets.PRESETS, "pong", tiny)


@pytest.mark.slow
def test_train_pong_end_to_end_on_a_tiny_budget(tmp_path, tiny_pong, monkeypatch):
    import json

    from ale_py.env import AtariEnv

    from prefrl import TrainConfig, train
    from prefrl.reward_model import RewardEnsemble

    games = []  # the emulator's own scoreboard at each game over: (agent's points, computer's points)
    real_step = AtariEnv.step

    def step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        if result[2]:
            ram = self.ale.getRAM()
            games.append((int(ram[14]), int(ram[13])))
        return result

    monkeypatch.setattr(AtariEnv, "step", step)
    run = tmp_path / "run"
    summary = train(TrainConfig("pong", labels=6, steps=256, run_dir=str(run), progress_bar=False))
    assert summary["labels_used"] == 6 and summary["timesteps"] >= 256
    # A real Pong game score, from the unmasked game: the evaluation (the last game played) ran to game over,
    # a side at 21 points, and its true return is the agent's points less the computer's on the game's scoreboard.
    assert games, "no Pong game reached game over"
    agent, computer = games[-1]
    assert summary["eval_episodes"] == 1 and max(agent, computer) == 21
    assert summary["true_return_mean"] == agent - computer, (summary["true_return_mean"], games)
    model = RewardEnsemble.load(run)
    assert model.config.arch == "cnn" and model.config.obs_shape == (4, 84, 84)
    assert json.loads((run / "config.json").read_text())["gym_id"] == "ALE/Pong-v5"


@pytest.mark.slow
def test_human_feedback_on_atari_shows_people_the_colour_screen_stored_compactly(tmp_path, tiny_pong):
    import sqlite3

    from prefrl.envs.atari import SCORE_MASKS
    from prefrl.labeling_ui.frames import clip_frames
    from prefrl.labeling_ui.scripted import ScriptedLabeler
    from prefrl.store import PreferenceStore
    from prefrl import TrainConfig, train

    run = tmp_path / "run"
    labeler = ScriptedLabeler(run / "store.sqlite", labeler="ann")
    labeler.start()
    summary = train(TrainConfig("pong", labels=6, steps=256, run_dir=str(run), feedback="human", progress_bar=False))
    labeler.stop()
    assert labeler.error is None and summary["labels_used"] == 6
    with PreferenceStore(run / "store.sqlite", create=False) as store:
        shown = {i for c in store.comparisons("labeled") for i in (c.left_id, c.right_id)}
        clips = store.get_clips(sorted(shown), frames=True)
    for clip in clips:
        frames = clip_frames(clip, "pong")  # what the window shows
        assert frames.shape == (25, 210, 160, 3) and frames.dtype == np.uint8  # the game's own screen
        assert (frames[..., 0] != frames[..., 2]).any()  # in colour
        for top, bottom, left, right in SCORE_MASKS["Pong"]:
            assert (frames[:, top:bottom, left:right] == 0).all()  # the score blanked, as for the agent
    sizes = sqlite3.connect(run / "store.sqlite").execute("SELECT length(frames) FROM clips WHERE frames IS NOT NULL")
    assert max(n for (n,) in sizes) < 25 * 210 * 160 * 3 / 20  # compressed over 20x


def test_ms_pacman_hides_the_score_under_the_maze_and_shows_the_top_corridor():
    env = make_env("ALE/MsPacman-v5", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    for _ in range(8):
        obs, *_ = env.step(0)
    raw = env.unwrapped.ale.getScreenRGB()
    assert raw[187:194].any()  # the score's digits, unmasked
    assert not env.render()[187:194].any()  # hidden from a person labeling
    blank = mask_frame(np.ones((84, 84), np.uint8), SCORE_MASKS["MsPacman"]) == 0
    assert not obs[:, blank].any() and blank[76].all()  # and from the agent (row 76 of 84: raw row 190)
    assert obs[-1, :8].any()  # the maze's top corridor, pellets and all, stays in view
    env.close()


def test_on_a_gpu_atari_takes_the_measured_gpu_fields_and_set_still_wins():
    from prefrl import TrainConfig
    from prefrl.presets import ATARI_GPU, ATARI_PRESET, preset_for

    assert preset_for("pong", atari=True) == ATARI_PRESET  # a CPU run is as before
    gpu = preset_for("pong", atari=True, device="cuda:0")
    assert {k: getattr(gpu, k) for k in ATARI_GPU} == ATARI_GPU and gpu.vector_env and gpu.fit_async
    assert gpu.clip_length == ATARI_PRESET.clip_length and gpu.ppo == ATARI_PRESET.ppo  # the rest is Atari's
    assert preset_for("cartpole", device="cuda") == preset_for("cartpole")  # classic control: no change
    chosen = TrainConfig("pong", device="cuda", overrides={"n_envs": 8, "fit_async": False}).preset()
    assert chosen.n_envs == 8 and not chosen.fit_async and chosen.vector_env
