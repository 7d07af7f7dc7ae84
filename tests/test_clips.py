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


def test_clips_keep_the_member_returns_of_one_ensemble_version():
    rec = ClipRecorder(n_envs=1, clip_length=4)
    obs, acts, rews = _steps(16, 1)
    members = np.stack([obs[..., 0], -obs[..., 0]], axis=-1)  # (T, n_envs, M = 2): each step's raw outputs
    no_done = np.zeros((16, 1), bool)
    rec.add_steps(obs[:6], acts[:6], rews[:6], no_done[:6], 6, member_rewards=members[:6], scored_by=3)
    rec.add_steps(obs[6:10], acts[6:10], rews[6:10], no_done[6:10], 10, member_rewards=members[6:10], scored_by=4)
    rec.add_steps(obs[10:12], acts[10:12], rews[10:12], no_done[10:12], 12)  # not scored (an off-policy round)
    rec.add_steps(obs[12:], acts[12:], rews[12:], no_done[12:], 16, member_rewards=members[12:], scored_by=4)
    first, across, unscored, last = rec.clips
    assert first.scored_by == 3 and first.member_returns.tolist() == [0 + 1 + 2 + 3, -6]
    assert across.scored_by == -1 and across.member_returns is None  # steps 4-5 by version 3, 6-7 by 4
    assert unscored.scored_by == -1 and unscored.member_returns is None  # steps 10-11 unscored
    assert last.scored_by == 4 and last.member_returns.tolist() == [12 + 13 + 14 + 15, -54]  # scored again after
    plain = ClipRecorder(n_envs=1, clip_length=4)
    plain.add_steps(obs, acts, rews, no_done, 16)
    assert all(c.member_returns is None and c.scored_by == -1 for c in plain.clips)
