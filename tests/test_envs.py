import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from prefrl.envs import SUITE, FixedHorizon, UnknownEnvError, make_env, resolve


@pytest.mark.parametrize("name", list(SUITE))
@pytest.mark.parametrize("fixed_horizon", [True, False])
def test_suite_envs_pass_gymnasium_checker(name, fixed_horizon):
    env = make_env(name, fixed_horizon=fixed_horizon)
    check_env(env.unwrapped if not fixed_horizon else env, skip_render_check=True)


def test_any_gymnasium_id_resolves_and_unknown_names_fail():
    assert resolve("CartPole-v1").name == "cartpole"
    assert resolve("MountainCarContinuous-v0").gym_id == "MountainCarContinuous-v0"
    with pytest.raises(UnknownEnvError, match="unknown env 'cartpol'"):
        resolve("cartpol")


class _DiesAtThree(gym.Env):
    """A fake env: reward 1 per step, terminates after 3 steps; obs counts steps."""

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t >= 3, False, {}


def test_fixed_horizon_absorbs_until_the_horizon():
    env = FixedHorizon(_DiesAtThree(), horizon=6)
    env.reset(seed=0)
    out = [env.step(0) for _ in range(6)]
    assert [r for _, r, *_ in out] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert not any(term for _, _, term, *_ in out)
    assert [trunc for *_, trunc, _ in out] == [False] * 5 + [True]
    assert [float(o[0]) for o, *_ in out] == [1, 2, 3, 3, 3, 3]  # the terminal observation is absorbing
    assert out[3][4]["absorbed"] and "absorbed" not in out[1][4]


def test_fixed_horizon_reset_mode_continues_and_charges_termination():
    env = FixedHorizon(_DiesAtThree(), horizon=7, on_termination="reset", termination_reward=-5.0)
    env.reset(seed=0)
    out = [env.step(0) for _ in range(7)]
    assert [r for _, r, *_ in out] == [1.0, 1.0, -4.0, 1.0, 1.0, -4.0, 1.0]
    assert [float(o[0]) for o, *_ in out] == [1, 2, 0, 1, 2, 0, 1]  # reset observations follow the falls
    assert [trunc for *_, trunc, _ in out] == [False] * 6 + [True]
    assert not any(term for _, _, term, *_ in out)
    assert out[2][4]["reset"] and "reset" not in out[1][4]


def test_cartpole_variant_logs_real_episodes_in_an_inner_monitor():
    from stable_baselines3.common.monitor import Monitor

    env = make_env("cartpole", inner_wrapper=Monitor)
    env.reset(seed=1)
    env.action_space.seed(1)
    episodes = []
    for _ in range(500):
        _, _, term, trunc, info = env.step(env.action_space.sample())
        if "episode" in info:
            episodes.append(info["episode"]["r"])
        assert not term
    assert trunc and len(episodes) >= 5  # a random policy falls many times in 500 steps
    assert all(1 <= r < 200 for r in episodes)  # the game's own returns, without the penalty


def test_fixed_horizon_rejects_bad_horizon():
    with pytest.raises(ValueError, match="FixedHorizon: horizon must be at least 1, got 0"):
        FixedHorizon(_DiesAtThree(), horizon=0)


MY_ENVS = '''
import gymnasium as gym

gym.register("MyCartPole-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
             max_episode_steps=200)
'''


def test_module_colon_id_imports_the_module_that_registers_it(tmp_path, monkeypatch):
    (tmp_path / "prefrl_test_envs.py").write_text(MY_ENVS)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = resolve("prefrl_test_envs:MyCartPole-v0")
    assert spec.horizon == 200 and make_env(spec.name).observation_space.shape == (4,)
    with pytest.raises(UnknownEnvError, match="cannot import 'no_such_module'"):
        resolve("no_such_module:MyCartPole-v0")
    with pytest.raises(UnknownEnvError, match="registered no env 'Other-v0'"):
        resolve("prefrl_test_envs:Other-v0")
    gym.registry.pop("MyCartPole-v0", None)


def test_an_id_a_users_module_registered_is_recorded_and_registered_again_where_it_is_not():
    from prefrl.envs import register_recorded, registration

    gym.register("PrefrlTestCartPole-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                 max_episode_steps=123)
    record = registration("PrefrlTestCartPole-v0")
    assert record == {"id": "PrefrlTestCartPole-v0", "max_episode_steps": 123, "kwargs": {},
                      "entry_point": "gymnasium.envs.classic_control.cartpole:CartPoleEnv"}
    assert registration("cartpole") is None and registration("ALE/Pong-v5") is None
    gym.registry.pop("PrefrlTestCartPole-v0")  # a later process, which never imported the user's module
    with pytest.raises(UnknownEnvError):
        resolve("PrefrlTestCartPole-v0")
    register_recorded(record)
    assert resolve("PrefrlTestCartPole-v0").horizon == 123
    gym.registry.pop("PrefrlTestCartPole-v0")
