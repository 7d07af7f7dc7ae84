import gymnasium as gym
import numpy as np

from prefrl.epic import TRUE_REWARDS, epic_distance


def _transitions(n=400, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3))
    actions = rng.normal(size=(n, 1))
    next_obs = obs + 0.1 * rng.normal(size=(n, 3))
    return obs, actions, next_obs


def reward(s, a, s2):
    return np.sin(s[:, 0]) * a[:, 0] + s2[:, 1] ** 2 - 0.5 * s[:, 2]


def test_epic_is_zero_for_a_rescaled_potential_shaped_copy():
    gamma = 0.9
    potential = lambda s: np.cos(s[:, 0]) + 2.0 * s[:, 1] * s[:, 2]  # noqa: E731
    shaped = lambda s, a, s2: 3.0 * reward(s, a, s2) + gamma * potential(s2) - potential(s) + 7.0  # noqa: E731
    assert epic_distance(reward, shaped, *_transitions(), gamma=gamma) < 1e-6


def test_epic_sees_a_different_reward_and_a_negated_one():
    other = lambda s, a, s2: s[:, 0] * s2[:, 2]  # noqa: E731
    negated = lambda s, a, s2: -reward(s, a, s2)  # noqa: E731
    d_other, d_negated = (epic_distance(reward, r, *_transitions()) for r in (other, negated))
    assert 0.3 < d_other < 0.95 and d_negated > 0.99


def test_the_pendulum_score_function_matches_the_env():
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(50):
        action = env.action_space.sample()
        next_obs, r, *_ = env.step(action)
        rows.append((obs, action, next_obs, r))
        obs = next_obs
    o, a, o2, r = (np.array(x) for x in zip(*rows))
    np.testing.assert_allclose(TRUE_REWARDS["pendulum"](o, a, o2), r, rtol=1e-5, atol=1e-5)
