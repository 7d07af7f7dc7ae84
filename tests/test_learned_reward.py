import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from prefrl.learned_reward import LearnedRewardVecEnv, relabel_rollout
from prefrl.wrappers import RewardVecEnvWrapper, RewardWrapper


def _venv(n=2):
    return DummyVecEnv([lambda: gym.make("CartPole-v1") for _ in range(n)])


def reward_fn(obs, actions):
    """A stand-in learned reward: the cart position plus the action."""
    return obs[:, 0] + actions.astype(np.float32)


def test_vec_wrapper_replaces_reward_and_keeps_true_reward():
    env = RewardVecEnvWrapper(_venv(), reward_fn)
    obs = env.reset()
    for actions in (np.array([1, 0]), np.array([0, 0])):
        new_obs, rewards, dones, infos = env.step(actions)
        np.testing.assert_allclose(rewards, obs[:, 0] + actions)  # r(s, a) of the step taken
        assert [info["true_reward"] for info in infos] == [1.0, 1.0]
        obs = new_obs


def test_gym_wrapper_replaces_reward_and_keeps_true_reward():
    env = RewardWrapper(gym.make("CartPole-v1"), reward_fn)
    obs, _ = env.reset(seed=0)
    new_obs, reward, terminated, truncated, info = env.step(1)
    assert reward == np.float32(obs[0] + 1) and info["true_reward"] == 1.0
    _, reward, _, _, _ = env.step(0)
    assert reward == np.float32(new_obs[0])


def test_wrappers_refuse_a_reward_that_is_not_callable():
    import pytest

    with pytest.raises(TypeError, match="RewardVecEnvWrapper: reward must be callable"):
        RewardVecEnvWrapper(_venv(), 1.0)
    with pytest.raises(TypeError, match="RewardWrapper: reward must be callable"):
        RewardWrapper(gym.make("CartPole-v1"), None)


def test_recording_env_records_every_step_and_forgets_on_drain():
    env = LearnedRewardVecEnv(_venv())
    obs = env.reset()
    actions = np.array([1, 0])
    env.step(actions)
    record = env.drain()
    np.testing.assert_array_equal(record.obs[0], obs)
    np.testing.assert_array_equal(record.actions[0], actions)
    np.testing.assert_array_equal(record.true_rewards[0], [1.0, 1.0])
    assert env.drain() is None


def test_deferred_mode_returns_zeros_and_records_in_order():
    env = LearnedRewardVecEnv(_venv())
    first = env.reset()
    _, rewards, _, _ = env.step(np.array([0, 0]))
    second, _, _, _ = env.step(np.array([1, 1]))
    assert (rewards == 0).all()
    record = env.drain()
    assert record.obs.shape == (2, 2, 4)
    np.testing.assert_array_equal(record.obs[0], first)
    np.testing.assert_array_equal(record.actions[:, 0], [0, 1])


def test_rollout_relabel_equals_per_step_reward():
    """PPO's buffer after a deferred rollout + relabel holds exactly what a per-step reward gives."""
    buffers = {}
    for mode in ("step", "rollout"):
        env = RewardVecEnvWrapper(_venv(), reward_fn) if mode == "step" else LearnedRewardVecEnv(_venv())
        model = PPO("MlpPolicy", env, n_steps=64, seed=3, device="cpu")
        model._setup_learn(64, None)
        from stable_baselines3.common.callbacks import BaseCallback

        class Relabel(BaseCallback):
            def _on_step(self):
                return True

            def _on_rollout_end(self):
                if mode == "rollout":
                    rec = env.drain()
                    learned = reward_fn(rec.obs.reshape(-1, 4), rec.actions.reshape(-1)).reshape(64, 2)
                    relabel_rollout(self.model.rollout_buffer, learned, self.locals["values"], self.locals["dones"])

        cb = Relabel()
        cb.init_callback(model)
        model.collect_rollouts(env, cb, model.rollout_buffer, 64)
        buffers[mode] = model.rollout_buffer
    a, b = buffers["step"], buffers["rollout"]
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_allclose(a.rewards, b.rewards, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.advantages, b.advantages, rtol=1e-4, atol=1e-4)
    assert np.abs(a.rewards).sum() > 0


def test_frames_are_recorded_into_clips_and_the_store(tmp_path):
    from prefrl.clips import ClipRecorder, unpack_frames
    from prefrl.store import PreferenceStore

    env = LearnedRewardVecEnv(DummyVecEnv([lambda: gym.make("CartPole-v1", render_mode="rgb_array")]),
                              record_frames=True)
    env.reset()
    for _ in range(4):
        env.step(np.array([0]))
    record = env.drain()
    assert record.frames.shape == (4, 1) and record.frames.dtype == object  # packed
    assert unpack_frames(record.frames[:, 0]).shape == (4, 400, 600, 3)
    recorder = ClipRecorder(n_envs=1, clip_length=4)
    recorder.add_steps(record.obs, record.actions, record.true_rewards, record.dones, 0, record.frames)
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        (clip_id,) = store.add_clips([recorder.clips[0]])
        back = store.get_clips([clip_id], frames=True)[0]
        assert store.get_clips([clip_id])[0].frames is None  # frames load only when asked for
    np.testing.assert_array_equal(back.frames, unpack_frames(record.frames[:, 0]))


def test_background_scoring_gives_the_rollout_the_same_rewards():
    import threading

    from prefrl.loop import PreferenceCallback

    threads = set()

    class Reward:  # the learned reward the callback scores with, and two members' outputs
        version = 0

        def scored(self, obs, actions):
            threads.add(threading.current_thread().name)
            learned = obs[..., 0] + actions.astype(np.float32)
            return learned, np.stack([learned, -learned], axis=-1)

    reward = Reward()

    class Fitter:
        def close(self):
            pass

    env = LearnedRewardVecEnv(_venv(3))
    env.reset()
    callback = PreferenceCallback(env, reward=reward, recorder=None, querier=None, feedback=None, data=None,
                                  fitter=Fitter(), schedule=None, overlap=8)
    for _ in range(37):
        env.step(np.array([env.action_space.sample() for _ in range(3)]))
        callback._on_step()
    record = env.drain()
    scored = [f.result() for f in callback._scored]
    assert [len(learned) for learned, _ in scored] == [8, 8, 8, 8]  # 37 steps: four chunks in the background, 5 left
    learned, members = callback._score(record, scored)
    np.testing.assert_array_equal(learned, record.obs[..., 0] + record.actions.astype(np.float32))
    np.testing.assert_array_equal(members, np.stack([learned, -learned], axis=-1))  # (T, n_envs, M), in order
    assert any(name.startswith("prefrl-reward") for name in threads)
    assert callback.scorer_cpu > 0  # the background thread's CPU seconds, for the run's summary
    callback._on_training_end()
