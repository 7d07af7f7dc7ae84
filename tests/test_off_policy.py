"""Off-policy learners (SAC, TD3, DQN) on the learned reward: each new transition's reward written into
the replay buffer before the updates that follow, every stored transition relabeled after each refit
(PEBBLE); ``--hyperparams`` and ``--config`` files."""

import json

import numpy as np
import pytest
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.vec_env import DummyVecEnv

import prefrl.training
from prefrl.algos import build_kwargs, parse_hyperparams
from prefrl.cli import main
from prefrl.envs import make_env
from prefrl.learned_reward import LearnedRewardVecEnv, relabel_replay, write_replay
from prefrl.reward_fn import LearnedReward


def _collect(algo_cls, env, steps, **kwargs):
    """A real SB3 learner collecting ``steps`` steps (no update: learning_starts is beyond them) through the
    recording env; returns the learner, the recording and a reward model for the env."""
    venv = LearnedRewardVecEnv(DummyVecEnv([lambda: make_env(env) for _ in range(2)]))
    agent = algo_cls("MlpPolicy", venv, learning_starts=10_000, seed=0, device="cpu", **kwargs)
    agent.learn(steps)
    record = venv.drain()
    reward = LearnedReward.build(venv.observation_space, venv.action_space, hidden=8)
    return agent, record, reward, venv


@pytest.mark.parametrize("algo_cls, env", [(SAC, "pendulum"), (DQN, "cartpole")], ids=["sac-box", "dqn-discrete"])
def test_the_replay_buffer_gets_the_reward_of_what_the_env_was_given(algo_cls, env):
    agent, record, reward, venv = _collect(algo_cls, env, 64)
    buffer = agent.replay_buffer
    assert buffer.pos == len(record.obs) == 32 and not buffer.rewards.any()  # the deferred env's zeros
    expected = reward(record.obs, record.actions)  # the actions the env was given (SAC's unscaled)

    write_replay(buffer, expected[-7:])  # the last 7 vector steps, as after a rollout of 7
    np.testing.assert_allclose(buffer.rewards[25:32], expected[-7:], rtol=1e-5)
    assert not buffer.rewards[:25].any()

    box = hasattr(venv.action_space, "low")
    rows = relabel_replay(buffer, reward, venv.observation_space.shape, venv.action_space.shape,
                          agent.policy.unscale_action if box else None, chunk=8)
    assert rows == 32
    np.testing.assert_allclose(buffer.rewards[:32], expected, rtol=1e-4, atol=1e-5)
    assert not buffer.rewards[32:].any()


def _spy_on_training(monkeypatch):
    """The agent and the preference callback that ``prefrl.train`` builds."""
    seen = {}
    real_class, real_callback = prefrl.training.algo_class, prefrl.training.make_callback

    def algo_class(name):
        cls = real_class(name)

        def build(*args, **kwargs):
            seen["agent"] = cls(*args, **kwargs)
            return seen["agent"]
        return build

    def make_callback(*args, **kwargs):
        seen["callback"] = real_callback(*args, **kwargs)
        return seen["callback"]

    monkeypatch.setattr(prefrl.training, "algo_class", algo_class)
    monkeypatch.setattr(prefrl.training, "make_callback", make_callback)
    return seen


@pytest.mark.parametrize("argv", [
    ["cartpole", "--algo", "dqn", "--labels", "16", "--steps", "2048", "--set", "round_steps=512",
     "--hyperparams", "learning_starts=256", "train_freq=128", "gradient_steps=8"],
    ["pendulum", "--algo", "sac", "--labels", "16", "--steps", "800", "--set", "round_steps=200",
     "--hyperparams", "learning_starts=100", "train_freq=8", "gradient_steps=1", "policy_kwargs=dict(net_arch=[16])"],
    ["pendulum", "--algo", "td3", "--labels", "16", "--steps", "800", "--set", "round_steps=200",
     "--hyperparams", "learning_starts=100", "train_freq=8", "gradient_steps=1", "policy_kwargs=dict(net_arch=[16])"],
], ids=["dqn", "sac", "td3"])
def test_an_off_policy_run_relabels_its_whole_replay_buffer_after_each_refit(tmp_path, monkeypatch, argv):
    seen = _spy_on_training(monkeypatch)
    run = tmp_path / "run"
    assert main(["train", *argv, "--set", "eval_episodes=1", "--no-progress", "--run-dir", str(run)]) == 0
    agent, callback = seen["agent"], seen["callback"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labels_used"] == 16 and summary["algo"] == argv[2] and summary["timesteps"] >= int(argv[6])
    buffer, venv = agent.replay_buffer, callback.venv
    n = buffer.pos
    assert n * venv.num_envs >= int(argv[6])
    refits = int(sum(1 for row in _rows(run) if row.get("refit") == "1"))
    assert refits >= 2 and callback.relabeled >= n  # relabeled whole at least once: the last time every row
    # Every stored reward is the final ensemble's on that transition (the last refit came at the last
    # rollout, and every transition after it was written with it).
    obs = buffer.observations[:n].reshape(n, venv.num_envs, *venv.observation_space.shape)
    actions = buffer.actions[:n]
    if hasattr(venv.action_space, "low"):
        actions = agent.policy.unscale_action(actions)
    expected = callback.reward(obs, actions.reshape(n, venv.num_envs, *venv.action_space.shape))
    np.testing.assert_allclose(buffer.rewards[:n], expected, rtol=1e-4, atol=1e-5)
    assert buffer.rewards[:n].std() > 0
    # metrics.csv: a row per round, not per update
    assert len(_rows(run)) <= int(argv[6]) // int(argv[argv.index("--set") + 1].split("=")[1]) + 1


def _rows(run):
    import csv

    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_an_off_policy_true_reward_run_and_its_policy_load_back(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "cartpole", "--algo", "dqn", "--reward", "true", "--steps", "1024", "--hyperparams",
                 "learning_starts=256", "--set", "eval_episodes=1", "--no-progress", "--run-dir", str(run)]) == 0
    policy = prefrl.load_policy(run)
    assert type(policy).__name__ == "DQN" and policy.replay_buffer.buffer_size == 1  # acting needs no buffer
    config = json.loads((run / "config.json").read_text())
    assert config["hyperparams"] == {"learning_starts": 256} and config["algo"] == "dqn"


def test_hyperparams_are_data_until_the_learner_is_built():
    got = parse_hyperparams(["learning_rate=3e-4", "policy_kwargs=dict(net_arch=[64, 64], activation_fn=nn.Tanh)",
                             "clip_range=lin_0.2", "ent_coef=auto", "use_sde=True", "train_freq=(4, 'step')"])
    assert got == {"learning_rate": 3e-4, "policy_kwargs": {"net_arch": [64, 64], "activation_fn": "nn.Tanh"},
                   "clip_range": "lin_0.2", "ent_coef": "auto", "use_sde": True, "train_freq": [4, "step"]}
    json.dumps(got)  # config.json holds them as they are
    from gymnasium import spaces
    import torch

    built = build_kwargs("td3", {**got, "noise_type": "normal", "noise_std": 0.1}, spaces.Box(-1, 1, (3,)))
    assert built["policy_kwargs"]["activation_fn"] is torch.nn.Tanh
    assert built["clip_range"](1.0) == pytest.approx(0.2) and built["clip_range"](0.0) == pytest.approx(0.0)
    assert built["action_noise"]._sigma.tolist() == pytest.approx([0.1] * 3)


@pytest.mark.parametrize("argv, message", [
    (["pendulum", "--algo", "dqn"], "--algo dqn: SB3's DQN needs Discrete actions, and 'pendulum' has Box"),
    (["cartpole", "--algo", "sac"], "--algo sac: SB3's SAC needs Box actions, and 'cartpole' has Discrete(2): use one "
                                    "of ppo, a2c, dqn"),
    (["cartpole", "--hyperparams", "learning_rat=1e-3"], "--hyperparams learning_rat: SB3's PPO takes no 'learning_rat'"),
    (["cartpole", "--hyperparams", "n_envs=4"], "use --set n_envs=N"),
    (["cartpole", "--hyperparams", "3e-4"], "--hyperparams '3e-4' is not KEY=VALUE"),
    (["cartpole", "--hyperparams", "policy_kwargs=dict(net_arch='wide')"], "--hyperparams: SB3's PPO refused them"),
    (["cartpole", "--hyperparams", "learning_rate=lin_fast"], "write lin_<number>"),
    (["pendulum", "--algo", "td3", "--hyperparams", "noise_type=pink", "noise_std=0.1"], "noise_type one of normal"),
], ids=["dqn-box", "sac-discrete", "unknown-key", "n_envs", "no-key", "refused-value", "bad-schedule", "bad-noise"])
def test_a_learner_or_setting_that_cannot_work_is_one_line_before_any_work(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    assert main(["train", *argv, "--run-dir", str(run), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0], err
    assert not run.exists()  # refused before the run directory was made


def test_a_config_file_gives_the_settings_and_the_command_line_wins(tmp_path, monkeypatch):
    seen = {}
    def train(config):  # what the command line hands to training, not a run
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(prefrl.training, "train", train)
    toml = tmp_path / "run.toml"
    toml.write_text('env = "pendulum"\nalgo = "sac"\nlabels = 30\nseed = 3\nmax-minutes = 2.5\n'
                    '[set]\nround_steps = 500\n[hyperparams]\nlearning_rate = 1e-3\n'
                    'policy_kwargs = { net_arch = [64, 64] }\n')
    with pytest.raises(SystemExit):
        main(["train", "--config", str(toml), "--seed", "4", "--hyperparams", "gamma=0.9", "--set", "clip_length=25"])
    config = seen["config"]
    assert (config.env, config.algo, config.labels, config.seed, config.max_minutes) == ("pendulum", "sac", 30, 4, 2.5)
    assert config.overrides == {"round_steps": 500, "clip_length": 25}
    assert config.hyperparams == {"learning_rate": 1e-3, "policy_kwargs": {"net_arch": [64, 64]}, "gamma": 0.9}
    assert config.config_file == str(toml.resolve())

    yaml = tmp_path / "run.yaml"  # YAML 1.1 reads 1e-3 as text; it is taken as the number it means
    yaml.write_text("env: cartpole\nsteps: 1e5\nhyperparams:\n  learning_rate: 1e-3\n")
    seen.clear()
    with pytest.raises(SystemExit):
        main(["train", "--config", str(yaml)])
    assert (seen["config"].env, seen["config"].steps, seen["config"].hyperparams) == ("cartpole", 100000,
                                                                                       {"learning_rate": 1e-3})


@pytest.mark.parametrize("name, text, message", [
    ("a.toml", 'env = "cartpole"\nlabls = 5\n', "unknown setting 'labls'"),
    ("a.toml", 'env = "cartpole"\nlabels = "many"\n', 'labels is "many", not of type int | None'),
    ("a.toml", 'env = "cartpole\n', "is not valid TOML"),
    ("a.yaml", "env: [cartpole\n", "is not valid YAML"),
    ("a.yaml", "- cartpole\n", "holds list, not a table of settings"),
    ("a.toml", 'env = "cartpole"\nset = 5\n', "set must be a table"),
    ("a.json", "{}", "name a .toml, .yaml or .yml file"),
    ("missing.toml", None, "no such file"),
], ids=["unknown", "type", "toml", "yaml", "not-a-table", "set", "suffix", "missing"])
def test_a_bad_config_file_is_one_line(tmp_path, capsys, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    assert main(["train", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0], err
