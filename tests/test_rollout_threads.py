"""The preset's ``rollout_threads``: the agent collects on fewer torch threads and updates on all."""

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from prefrl.training import RolloutThreads


def test_collection_runs_on_the_rollout_threads_and_updates_get_every_thread_back():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
        seen = {"collect": set(), "update": set()}
        train = model.train

        def counted_train():
            seen["update"].add(torch.get_num_threads())
            train()

        model.train = counted_train

        class Collecting(BaseCallback):
            def _on_step(self):
                seen["collect"].add(torch.get_num_threads())
                return True

        model.learn(96, callback=[RolloutThreads(1), Collecting()])
        assert seen == {"collect": {1}, "update": {2}}
        assert torch.get_num_threads() == 2  # after learn, as before it
    finally:
        torch.set_num_threads(before)


def test_a_rollout_cut_short_still_gives_every_thread_back_at_learns_end():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")

        class StopMidRollout(BaseCallback):  # as --max-minutes's Deadline does
            def _on_step(self):
                return self.n_calls < 40

        model.learn(96, callback=[RolloutThreads(1), StopMidRollout()])
        assert model.num_timesteps < 96  # learn did end inside a rollout
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
