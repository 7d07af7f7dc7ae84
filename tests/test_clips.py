import numpy as np

from prefrl.clips import ClipRecorder


def _steps(T, n_envs):
    obs = np.arange(T * n_envs, dtype=np.float32).reshape(T, n_envs, 1)
    return obs, np.zeros((T, n_envs), np.int64), np.ones((T, n_envs), np.float32)


def test_clips_are_consecutive_and_never_cross_an_episode_end():
    rec = ClipRecorder(n_envs=2, clip_length=3)
    obs, acts, rews = _steps(10, 2)
    dones = np.zeros((10, 2), bool)
    dones[4, 0] = True  # env 0: episode of steps 0-4, then 5-9
    rec.add_steps(obs, acts, rews, dones, timestep=100)
    by_env = {0: [], 1: []}
    for clip in rec.clips:
        env = int(clip.obs[0, 0]) % 2
        by_env[env].append((clip.obs[:, 0] // 2).astype(int).tolist())
    assert by_env[0] == [[0, 1, 2], [5, 6, 7]]  # steps 3-4 are a tail too short to be a clip
    assert by_env[1] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert all(c.timestep == 100 and c.length == 3 and c.true_return == 3 for c in rec.clips)


def test_clips_span_rollouts_of_one_episode():
    rec = ClipRecorder(n_envs=1, clip_length=4)
    obs, acts, rews = _steps(6, 1)
    no_done = np.zeros((3, 1), bool)
    rec.add_steps(obs[:3], acts[:3], rews[:3], no_done, timestep=3)
    assert len(rec.clips) == 0
    rec.add_steps(obs[3:], acts[3:], rews[3:], no_done, timestep=6)
    assert [c.obs[:, 0].tolist() for c in rec.clips] == [[0, 1, 2, 3]]


def test_capacity_bounds_memory():
    rec = ClipRecorder(n_envs=1, clip_length=1, capacity=5)
    obs, acts, rews = _steps(20, 1)
    rec.add_steps(obs, acts, rews, np.zeros((20, 1), bool), timestep=0)
    assert [c.obs[0, 0] for c in rec.clips] == [15, 16, 17, 18, 19]


def test_packed_frames_survive_the_recorder_and_unpack_exactly():
    from prefrl.clips import pack_frames, unpack_frames

    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, (7, 2, 6, 5, 3), dtype=np.uint8)  # (T, n_envs, H, W, 3)
    packed = np.stack([pack_frames(step) for step in raw])  # what LearnedRewardVecEnv records
    assert packed.shape == (7, 2) and packed.dtype == object
    recorder = ClipRecorder(n_envs=2, clip_length=3)
    obs, acts, rews, dones = np.zeros((7, 2, 1)), np.zeros((7, 2)), np.zeros((7, 2)), np.zeros((7, 2), bool)
    recorder.add_steps(obs[:4], acts[:4], rews[:4], dones[:4], 0, packed[:4])  # a clip spans two rollouts
    recorder.add_steps(obs[4:], acts[4:], rews[4:], dones[4:], 4, packed[4:])
    clips = list(recorder.clips)
    assert len(clips) == 4  # two of 3 steps from each env's 7
    assert np.array_equal(unpack_frames(clips[2].frames), raw[3:6, 0])  # env 0's second clip
    assert np.array_equal(unpack_frames(raw[:2, 0]), raw[:2, 0])  # plain frames pass through
