"""ale-py's C++ vector env behind an SB3 VecEnv: the same observations, masks, scores and hidden game
over as the Python path (prefrl.envs.make_atari in a DummyVecEnv)."""

import numpy as np
import pytest

from prefrl.envs.atari import SCORE_MASKS, _scaled
from prefrl.envs.atari_vector import AtariVecEnv, _rom, vector_env_available

pytestmark = pytest.mark.skipif(not vector_env_available(), reason="needs ale-py >= 0.11 (AtariVectorEnv)")


def _play_until_a_game_ends(venv, max_steps=5000):
    rng = np.random.default_rng(0)
    for t in range(max_steps):
        obs, rewards, dones, infos = venv.step(rng.integers(0, venv.action_space.n, venv.num_envs))
        ended = [i for i, info in enumerate(infos) if "episode" in info]
        if ended:
            return t, obs, rewards, dones, infos, ended
    pytest.fail("no Pong game ended")


def test_rom_names():
    assert _rom("Pong") == "pong" and _rom("SpaceInvaders") == "space_invaders" and _rom("BeamRider") == "beam_rider"


def test_observations_are_the_python_paths_shape_with_the_score_masked_on_every_frame():
    from prefrl.envs import make_env

    venv = AtariVecEnv("ALE/Pong-v5", 2, num_threads=1)
    venv.seed(0)
    obs = venv.reset()
    python = make_env("pong")
    assert obs.shape == (2, *python.observation_space.shape) and obs.dtype == python.observation_space.dtype
    assert venv.action_space == python.action_space
    (t, b, left, r), = _scaled(SCORE_MASKS["Pong"], 84, 84)
    for _ in range(30):
        obs, *_ = venv.step(np.zeros(2, np.int64))
        assert (obs[:, :, t:b, left:r] == 0).all() and obs[:, :, b:, :].max() > 0
    venv.close()


def test_a_game_over_is_hidden_and_its_true_score_recorded():
    venv = AtariVecEnv("Pong", 2, num_threads=1)
    venv.seed(0)
    venv.reset()
    _, _, _, dones, infos, ended = _play_until_a_game_ends(venv)
    for i in ended:
        episode = infos[i]["episode"]
        assert not dones[i] and infos[i]["reset"]  # the agent's episode goes on
        assert episode["r"] == int(episode["r"]) and -21 <= episode["r"] <= -1  # a random player's lost game
        assert episode["l"] > 100
    venv.close()


def test_without_a_fixed_horizon_an_episode_is_a_game():
    venv = AtariVecEnv("Pong", 1, fixed_horizon=False, num_threads=1)
    venv.seed(1)
    venv.reset()
    _, obs, _, dones, infos, ended = _play_until_a_game_ends(venv)
    assert dones[0] and "terminal_observation" in infos[0] and not infos[0]["TimeLimit.truncated"]
    (t, b, left, r), = _scaled(SCORE_MASKS["Pong"], 84, 84)
    assert (infos[0]["terminal_observation"][:, t:b, left:r] == 0).all()
    venv.close()


def test_the_agents_episode_ends_at_the_horizon_as_a_truncation(monkeypatch):
    import prefrl.envs.atari_vector as module

    monkeypatch.setattr(module, "ATARI_HORIZON", 40)
    venv = AtariVecEnv("Pong", 2, num_threads=1)
    venv.reset()
    for step in range(1, 81):
        obs, _, dones, infos = venv.step(np.zeros(2, np.int64))
        assert dones.all() == (step % 40 == 0)
    assert all(info["TimeLimit.truncated"] and info["terminal_observation"].shape == (4, 84, 84) for info in infos)
    venv.close()


def test_ppo_steps_it():
    from stable_baselines3 import PPO

    venv = AtariVecEnv("Pong", 2, num_threads=1)
    agent = PPO("CnnPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    agent.learn(64)
    assert agent.num_timesteps == 64
    with pytest.raises(NotImplementedError, match="Python path"):
        venv.get_images()
    venv.close()


def test_the_preset_sets_how_many_cpp_threads_step_the_games(monkeypatch):
    # Two runs side by side on one machine each take half its cores (--set vector_threads=N).
    import prefrl.build as build
    from prefrl.envs import resolve

    made = {}

    class Recording(AtariVecEnv):
        def __init__(self, *args, **kwargs):
            made.update(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(build, "AtariVecEnv", Recording)
    venv = build.make_venv(resolve("pong"), 2, True, seed=0, vector=True, threads=1)
    assert isinstance(venv, Recording) and made["num_threads"] == 1
    venv.close()
