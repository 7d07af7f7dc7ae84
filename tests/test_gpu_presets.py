"""experiments/gpu_presets.py: its configurations split into preset fields and PPO keys, and the
gradient steps it reports follow PPO's rollout arithmetic."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import gpu_presets  # noqa: E402


def test_a_configuration_splits_into_set_fields_and_hyperparams():
    name, sets, hyper = gpu_presets.parse("64 envs:n_envs=64,vector_threads=16,batch_size=1024,n_steps=256")
    assert name == "64 envs"
    assert sets == {"n_envs": "64", "vector_threads": "16"}
    assert hyper == {"batch_size": "1024", "n_steps": "256"}


@pytest.mark.parametrize("text", ["no colon", ":n_envs=4", "x:n_envs"])
def test_a_malformed_configuration_exits_with_one_line(text):
    with pytest.raises(SystemExit) as info:
        gpu_presets.parse(text)
    message = str(info.value)
    assert "--configs" in message and "\n" not in message


def test_gradient_steps_per_thousand_env_steps():
    # the Atari preset on a GPU: 16 envs x 128 steps = 2,048 samples, 8 minibatches of 256, 4 epochs
    assert gpu_presets.grad_steps_per_1k({}, {}, gpu_envs=16) == pytest.approx(1000 * 32 / 2048, abs=0.01)
    # 64 envs x 128 steps, batches of 1,024: 8 minibatches, 4 epochs, over 8,192 samples
    assert gpu_presets.grad_steps_per_1k({"n_envs": "64"}, {"batch_size": "1024"}, 16) == pytest.approx(3.91, abs=0.01)
    # a rollout that does not divide into batches still takes its last, short minibatch
    assert gpu_presets.grad_steps_per_1k({"n_envs": "3"}, {"n_steps": "100", "batch_size": "256", "n_epochs": "1"},
                                         16) == pytest.approx(1000 * 2 / 300, abs=0.01)


def test_last_returns_reads_the_tail_of_the_true_score(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("timesteps,labels,true_episode_return,wall_seconds\n1,,,0.1\n2,,-21,0.2\n3,,-19,0.3\n")
    assert gpu_presets.last_returns(metrics) == -20.0
    assert gpu_presets.last_returns(metrics, count=1) == -19.0
    assert gpu_presets.last_returns(tmp_path / "absent.csv") is None
