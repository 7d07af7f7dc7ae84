"""The public API: the README's example runs, and the names it promises exist."""

import re
from pathlib import Path

import numpy as np
import pytest

import prefrl

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- api-example[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert match, "README.md has no api-example block"
    return match.group(1)


def test_the_public_names_are_there_and_import_nothing_heavy_until_used():
    import subprocess
    import sys

    for name in ("train", "TrainConfig", "resume", "load_reward", "load_policy", "RunDir", "RewardWrapper",
                 "RewardVecEnvWrapper", "LearnedReward"):
        assert name in prefrl.__all__ and callable(getattr(prefrl, name))
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        prefrl.trian  # noqa: B018
    # the labeling window imports prefrl.store: that must not load SB3 (or torch)
    done = subprocess.run([sys.executable, "-c", "import sys, prefrl.store; "
                           "print(any(m.split('.')[0] in ('stable_baselines3', 'torch') for m in sys.modules))"],
                          capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.slow
def test_the_readme_example_trains_dqn_on_a_saved_learned_reward(tmp_path, monkeypatch):
    from stable_baselines3 import DQN

    run_dir = tmp_path / "cartpole"
    prefrl.train(prefrl.TrainConfig("cartpole", labels=12, steps=2048, run_dir=str(run_dir), progress_bar=False))
    example = _readme_example()
    first, _, rest = example.partition("\n")
    assert first.startswith("run_dir, steps = ")
    seen = {}
    real_learn = DQN.learn

    def learn(self, *args, **kwargs):  # what DQN trained on: the learned reward, the true one in info
        seen["dqn"] = self
        return real_learn(self, *args, **kwargs)

    monkeypatch.setattr(DQN, "learn", learn)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(f"run_dir, steps = {str(run_dir)!r}, 1_500\n" + rest, scope)
    dqn = seen["dqn"]
    assert dqn.num_timesteps >= 1_500
    buffer = dqn.replay_buffer
    n = buffer.pos if not buffer.full else buffer.buffer_size
    stored = buffer.rewards[:n].reshape(-1)
    obs = buffer.observations[:n].reshape(-1, 4)
    actions = buffer.actions[:n].reshape(-1)
    reward = prefrl.load_reward(run_dir)
    # (float32 sums of 4 rows or of all at once differ in the last digits)
    np.testing.assert_allclose(stored, reward(obs, actions), rtol=1e-3, atol=1e-5)  # not CartPole's 1 a step
    assert not np.allclose(stored, 1.0)
    assert isinstance(scope["returns"], list) and len(scope["returns"]) == 10
