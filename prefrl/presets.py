"""Per-env presets: PPO hyperparameters (rl-zoo's tuned ones where they exist), clip length, label
budget and timesteps."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.utils import LinearSchedule

__all__ = ["Preset", "PRESETS", "ATARI_GPU", "preset_for"]


def _linear(start: float) -> LinearSchedule:
    """rl-zoo's ``lin_<start>``: decays linearly from ``start`` to 0 over training."""
    return LinearSchedule(start, 0.0, 1.0)


@dataclass(frozen=True)
class Preset:
    """What a run of one env uses unless the command line says otherwise.

    Attributes:
        n_envs: parallel envs (rl-zoo's value).
        timesteps: env steps of PPO.
        labels: the label budget.
        clip_length: steps per clip.
        ppo: keyword arguments for SB3's ``PPO``.
        initial_fraction: share of the budget asked on random-policy clips before RL.
        t0_fraction: the label-rate decay constant t0 as a share of ``timesteps``.
        label_batch: fewest new labels asked at once after the initial batch.
        greedy_steps: env steps of the deterministic policy (the one evaluated at the end) played
            before each round of queries; its clips join the query candidates, so that labels also
            cover where that policy goes, which PPO's sampling policy may never visit (0: none).
        labels_until: share of the run by which every label has been asked (1.0: the schedule runs to
            the end, as in the paper; labels asked in a run's last rollouts teach the policy nothing).
        reward_std: std of the learned reward PPO sees.
        reward_uses_action: whether the reward model sees the action as well as the observation.
        reward_updates: fewest gradient steps per refit of the reward model.
        reward_arch: ``mlp`` over flat features, or ``cnn``, the paper's Atari network over frames.
        reward_batch: comparisons per gradient step of the reward model.
        reward_epochs: passes over the labels per refit (five times as many for the first fit); with
            ``reward_target_accuracy``, the most passes per fit.
        reward_feature_stats: ``first``: the reward model's input standardization is measured on the
            first fit's clips (random-policy clips) and kept; ``every``: measured again on all
            labeled clips at every fit.
        reward_warm_start: each refit continues from the ensemble the last one left; False refits
            from fresh weights (and input standardization measured on all labels) every time.
        reward_hidden: width of each member's hidden layers.
        reward_noise: the share of random answers the Bradley–Terry model assumes (the paper: 0.1).
        fit_delay: refit the reward model in a background thread while PPO goes on, and switch PPO's
            reward to the refit ensemble this many env steps after the fit began (0: PPO waits for
            each refit); see :class:`prefrl.fitting.Fitter`.
        reward_target_accuracy: stop a fit once the members' training accuracy reaches this (PEBBLE:
            0.97, up to 200 epochs); None runs ``reward_epochs`` every time.
        reward_dropout: dropout after each convolution of the ``cnn`` reward model.
        reward_augment: ``cnn`` only: train on clips shifted by up to this many pixels (see
            ``EnsembleTrainer(augment_shift=...)``); 0: off. Off by default: on 1,000 random MsPacman
            pairs, ±4 px held validation accuracy at 0.76 after 5 passes, against 0.89 without.
        random_steps: env steps of the random policy whose clips the initial labels are asked on
            (None: 10 × initial labels × clip length).
        explore_fraction: for this share of the run, a state-novelty bonus (see
            :mod:`prefrl.exploration`) is added to the learned reward, its weight decaying from 1 to 0;
            0 turns it off.
        candidate_steps: queries are drawn from clips of this many most recent env steps, so that
            labels follow the current policy (older clips were labeled when they were recent).
        eval_episodes: episodes of the plain env the final policy is scored on.
        a2c: keyword arguments for SB3's ``A2C`` when ``--algo a2c`` is chosen.
        a2c_envs: parallel envs for A2C (None: ``n_envs``).
        sac, td3, dqn: keyword arguments for SB3's ``SAC``, ``TD3`` and ``DQN`` (rl-zoo's tuned ones where
            they exist; ``noise_type``/``noise_std`` as rl-zoo writes them), for ``--algo sac`` etc.
        off_policy_envs: parallel envs for SAC, TD3 and DQN (rl-zoo uses one).
        off_policy_timesteps: env steps of SAC, TD3 and DQN (None: ``timesteps``); they need far fewer.
        round_steps: off-policy learners only: env steps between rounds of the preference loop (clips
            cut, labels asked, the reward model refit, then every transition in the replay buffer
            relabeled with it). The learned reward of each new transition is written before the
            learner's next update whatever this is; on-policy learners run a round at each rollout's end.
        checkpoints: policy checkpoints saved over the run, evenly spaced (for learning curves and
            ``--resume``).
        fit_async: refit the reward model in a worker thread whenever new labels have come, the agent
            taking the newest finished refit at each rollout's end and never waiting for one
            (:class:`prefrl.fitting.AsyncFitter`; the paper's reward model trained asynchronously).
            When the switch falls then depends on the machine, so a run does not repeat exactly;
            ``fit_delay`` is ignored.
        fit_yield: with ``fit_async`` on a CPU, the worker trains at the lowest CPU priority and only
            while the agent collects a rollout, not while it updates (``AsyncFitter(yield_to_agent=True)``):
            for Atari, where the envs step on one core and leave the other idle. Off by default: beside
            other busy processes (two runs side by side, say) the worker then gets almost no CPU and
            the reward model hardly trains (a pong smoke run waited 880 s for its last refit so).
        refit_new_labels: each refit during RL trains on the labels that came since the last one and
            as many older ones drawn at random, instead of on every label, so that it costs in
            proportion to the labels that came, not to all there are (on 2 CPU cores a pass of the
            reward CNN over 500 Atari labels takes ~40 s); the output scale is still measured on every
            labeled clip. Fits that wait (before RL, on resume) take every label.
        check_clips: the per-refit check (:class:`prefrl.diagnostics.RefitCheck`) scores the ensemble
            before and after each refit on this many of the policy's most recent clips (each pass of
            the reward CNN over them costs the agent's time on a CPU).
        vector_env: Atari only: step the games in ale-py's C++ ``AtariVectorEnv``
            (:mod:`prefrl.envs.atari_vector`) instead of Python gymnasium envs in a ``DummyVecEnv``;
            runs whose clips people label (frames) always take the Python path.
        vector_threads: C++ threads stepping the games of ``vector_env`` (0: one per core; give each of
            two runs side by side half the cores).
        rollout_threads: torch threads of the agent's own forward passes while it collects a rollout
            (0: as many as its updates use); its updates get all of them back. Learned and true reward
            alike; on a CPU only.
    """

    n_envs: int
    timesteps: int
    labels: int
    clip_length: int
    ppo: dict[str, Any] = field(default_factory=dict)
    initial_fraction: float = 0.25
    t0_fraction: float = 0.25
    label_batch: int = 20
    labels_until: float = 1.0
    greedy_steps: int = 0
    reward_std: float = 1.0
    reward_uses_action: bool = True
    reward_updates: int = 0
    candidate_steps: int = 20_000
    explore_fraction: float = 0.0
    reward_arch: str = "mlp"
    reward_batch: int = 64
    reward_epochs: int = 8
    reward_target_accuracy: float | None = None
    reward_feature_stats: str = "first"
    reward_warm_start: bool = True
    reward_hidden: int = 64
    reward_noise: float = 0.1
    fit_delay: int = 4096
    reward_dropout: float = 0.5
    reward_augment: int = 0
    random_steps: int | None = None
    fit_async: bool = False
    fit_yield: bool = False
    refit_new_labels: bool = False
    check_clips: int = 200
    vector_env: bool = False
    vector_threads: int = 0
    rollout_threads: int = 0
    eval_episodes: int = 10
    a2c: dict[str, Any] = field(default_factory=dict)
    a2c_envs: int | None = None
    sac: dict[str, Any] = field(default_factory=dict)
    td3: dict[str, Any] = field(default_factory=dict)
    dqn: dict[str, Any] = field(default_factory=dict)
    off_policy_envs: int = 1
    off_policy_timesteps: int | None = None
    round_steps: int = 1000
    checkpoints: int = 5

    def algo(self, name: str) -> tuple[int, dict[str, Any]]:
        """Parallel envs and SB3 keyword arguments (as data: see :func:`prefrl.algos.build_kwargs`) of
        ``ppo``, ``a2c``, ``sac``, ``td3`` or ``dqn``."""
        if name == "a2c":
            return self.a2c_envs or self.n_envs, dict(self.a2c)
        if name in ("sac", "td3", "dqn"):
            return self.off_policy_envs, dict(getattr(self, name))
        return self.n_envs, dict(self.ppo)

    def timesteps_for(self, name: str) -> int:
        """Env steps of a run with learner ``name``."""
        if name in ("sac", "td3", "dqn") and self.off_policy_timesteps is not None:
            return self.off_policy_timesteps
        return self.timesteps


# Whether the reward model sees the action was measured per env (200 labels, seeds 0-2). On pendulum,
# a model that saw the torque learned spurious torque preferences (it rated +2 over -2 by 1.6 std at
# the top) and PPO held the pendulum tilted against them: seed 1 ended at -580 with the action and
# -197 without. On cartpole it is the other way round: without the action 1 seed in 3 reached 500,
# with it 3 in 3 (the push direction tells the model which way the pole is about to fall).
PRESETS: dict[str, Preset] = {
    # rl-zoo hyperparams/ppo.yml, CartPole-v1 (tuned); 300k steps, not rl-zoo's 100k: learning from
    # 200 labels is slower, and at 150k one seed in three had reached only 390.
    # The reward side was measured over seeds (experiments/sweep.py; final true return >= 475; the
    # README's table gives every figure): queries from the whole run and 8 epochs a refit reached
    # it on 0 of seeds 0-4. The per-refit checks showed the ensemble below chance on the policy's
    # own recent clips between refits (the policy drifted where no label had been and fell there)
    # and underfit (training accuracy 0.81-0.91). 60 epochs a refit with queries from the last 20k
    # steps: 5 of seeds 0-4 but 1 of 5-9, where the policy learned early from a reward fitted on 50
    # random-policy labels (falling at once, or drifting off the track) and never unlearned it;
    # half the budget on random-policy clips before RL: 8 of 0-9. The schedule asked its last labels
    # in the run's last rollout, where they teach the policy nothing, and a policy that drifted to
    # the track's edge after the last useful refit stayed there; every label asked by three quarters
    # of the run: 11 of seeds 0-11 on the device's CPUs, but 2 of seeds 0-3 failed here: PPO's
    # sampling policy no longer fell, so no clip showed the track's ends, and the deterministic
    # policy it is scored with drifted to an end the model did not rate low. greedy_steps puts the
    # deterministic policy's clips among the query candidates.
    "cartpole": Preset(
        n_envs=8, timesteps=300_000, labels=200, clip_length=50,
        ppo=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                 learning_rate=_linear(1e-3), clip_range=_linear(0.2)),
        candidate_steps=20_000, reward_epochs=60, initial_fraction=0.5, labels_until=0.75, greedy_steps=2000,
        # rl-zoo hyperparams/dqn.yml, CartPole-v1 ("almost tuned", 50k steps on the true reward).
        dqn=dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
                 target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                 exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256])),
        off_policy_timesteps=100_000,
    ),
    # rl-zoo Pendulum-v1 (tuned), but with the learning rate decayed linearly: at a constant 1e-3,
    # policies that had reached -190 collapsed to -970 late in 150k-step runs.
    "pendulum": Preset(
        n_envs=4, timesteps=150_000, labels=200, clip_length=50,
        ppo=dict(n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, learning_rate=_linear(1e-3),
                 clip_range=0.2, use_sde=True, sde_sample_freq=4),
        reward_uses_action=False,
        reward_updates=200,  # 8 epochs over ~100 labels left the model underfit (train loss 0.36)
        # rl-zoo hyperparams/sac.yml and td3.yml, Pendulum-v1 (20k steps on the true reward).
        sac=dict(learning_rate=1e-3),
        td3=dict(gamma=0.98, buffer_size=200_000, learning_starts=10_000, noise_type="normal", noise_std=0.1,
                 gradient_steps=1, train_freq=1, learning_rate=1e-3, policy_kwargs=dict(net_arch=[400, 300])),
        off_policy_timesteps=20_000,
    ),
    # rl-zoo Acrobot-v1 (untuned there; it also normalizes observations and runs 1e6 steps).
    "acrobot": Preset(
        n_envs=16, timesteps=300_000, labels=200, clip_length=50,
        ppo=dict(n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0),
        reward_uses_action=False,
        # The score is sparse: without the novelty bonus, 2 seeds of 3 never reached the goal, so no
        # clip ever showed the teacher a success (-500, against -76 and -81 on the true reward).
        explore_fraction=0.25,
        # With 8 epochs a refit and labels to the run's end: mean -92.2 over seeds 0-9, 12% below
        # true-reward PPO's -82.3 (seeds 1, 3, 7 at -104, -103, -125). Cartpole's fixes, 60 epochs
        # a refit and every label asked by three quarters of the run: seeds 0-4 at -81, -73, -84,
        # -79, -78 (experiments/sweep.py --env acrobot --configs
        # "A:reward_epochs=60,labels_until=0.75"); the README's table has all ten.
        reward_epochs=60, labels_until=0.75,
        # rl-zoo hyperparams/dqn.yml, Acrobot-v1 (tuned, 100k steps).
        dqn=dict(learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99,
                 target_update_interval=250, train_freq=4, gradient_steps=-1, exploration_fraction=0.12,
                 exploration_final_eps=0.1, policy_kwargs=dict(net_arch=[256, 256])),
        off_policy_timesteps=100_000,
    ),
    # rl-zoo MountainCar-v0 (untuned there; normalize, 1e6 steps).
    "mountaincar": Preset(
        n_envs=16, timesteps=300_000, labels=200, clip_length=50,
        ppo=dict(n_steps=16, gae_lambda=0.98, gamma=0.99, n_epochs=4, ent_coef=0.0),
        reward_uses_action=False,
        # rl-zoo hyperparams/dqn.yml, MountainCar-v0 (tuned, 120k steps).
        dqn=dict(learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000, gamma=0.98,
                 target_update_interval=600, train_freq=16, gradient_steps=8, exploration_fraction=0.2,
                 exploration_final_eps=0.07, policy_kwargs=dict(net_arch=[256, 256])),
        off_policy_timesteps=120_000,
    ),
}

# Atari: rl-zoo's PPO (hyperparams/ppo.yml, atari) and the paper's preference settings (App. A.2):
# 25-step clips, the reward CNN on frames alone, rewards normalized to std 0.05, 500 labels on
# random-policy clips before RL, then a rate ∝ t0/(T + t0) with t0 a tenth of the run (5e6 of 50M).
ATARI_PRESET = Preset(
    n_envs=8, timesteps=1_000_000, labels=1000, clip_length=25,
    ppo=dict(n_steps=128, n_epochs=4, batch_size=256, learning_rate=_linear(2.5e-4), clip_range=_linear(0.1),
             vf_coef=0.5, ent_coef=0.01),
    initial_fraction=0.5, t0_fraction=0.1, label_batch=50, reward_std=0.05, eval_episodes=3,
    reward_uses_action=False, reward_arch="cnn", reward_batch=16, random_steps=20_000, candidate_steps=10_000,
    # Three passes per refit, in the worker (fit_async below), so the agent never waits for them.
    # Breakout, 1M steps, 2 cores, ten seeds each, learned over the same seed's true-reward run
    # (experiments/atari_seeds.csv; README "Breakout again, 1M steps, with the vector env and three
    # reward passes a refit"; code 25aa5be836c2, asynchronous refits and the C++ vector env): one pass
    # reached >= 0.7 of it on 7 of 10 seeds (mean 0.724, two stalled near 2-3 points), three passes
    # on 8 of 10 (mean 0.979; 9 of 10 against the mean true score, where one pass has 6). A 16-pair
    # batch of 25-step clips costs the CNN ensemble ~1.4 s on 2 cores; the fit before RL, which
    # waits, took 489 s with three passes against 154 s with one (seed 0). The agent does not wait
    # for the worker, but on 2 cores shares the CPU with it: pong, 100k steps, learned/true steps/s
    # 0.692 at the paper's label rate and 0.609 at 5x (code acd448329873; README "Overhead on CPU").
    reward_epochs=3,
    # The paper puts dropout 0.5 after each convolution; its reward model trained asynchronously over
    # 50M steps. At our budgets it learns several times slower: on a pong run's 500 random-policy
    # labels, held-out accuracy after 1, 3 and 5 epochs was 0.74, 0.80, 0.80 with dropout 0.5 and
    # 0.88, 0.93, 0.93 without (experiments/rm_sweep.py). `--reward-dropout 0.5` restores the paper's.
    reward_dropout=0.0,
    # Refits in a worker, as the paper's reward model trained: the agent takes the newest finished
    # refit at each rollout's end and never waits for one (pong, 41 labels during 100k steps, 2 cores:
    # steps/s ratio 0.70 against 0.52 in place, code f494ec198d1b; README "Overhead on CPU"). Every
    # run of the ten-seed breakout count above refit so. A run then does not repeat exactly:
    # `--set fit_async=false` refits in place (fit_delay 0: at once), and does.
    fit_async=True,
    fit_delay=0,
    # One rollout's clips (8 envs x 128 steps / 25): 200 clips twice a refit was the loop's largest
    # cost on pong (check 76 s against a 626 s run, 41 labels, asynchronous refits, 2 cores).
    check_clips=40,
    # The agent's forward passes while it collects on one torch thread (its updates on all): on 2
    # cores libgomp's second thread otherwise spins between them and holds the core the reward
    # scorer and the asynchronous worker need. Pong, 100k steps, labels at 5x the paper's rate: the
    # learned/true steps/s ratio 0.956 and 1.026 (two seeds) against 0.859 without; true-reward PPO
    # itself ran at a median 0.966 of its speed on all threads (five interleaved 24k-step pairs,
    # 0.933-1.051). Code cff9fb40c2aa; README "Overhead on CPU". `--set rollout_threads=0` undoes it.
    rollout_threads=1,
    # The paper trained A2C (synchronous A3C) on Atari; rl-zoo's tuned A2C (hyperparams/a2c.yml, atari).
    a2c=dict(ent_coef=0.01, vf_coef=0.25,
             policy_kwargs=dict(optimizer_class=RMSpropTFLike, optimizer_kwargs=dict(eps=1e-5))),
    a2c_envs=16,
    # rl-zoo hyperparams/dqn.yml, atari (one env, 10M steps there).
    dqn=dict(buffer_size=100_000, learning_rate=1e-4, batch_size=32, learning_starts=100_000,
             target_update_interval=1000, train_freq=4, gradient_steps=1, exploration_fraction=0.1,
             exploration_final_eps=0.01, optimize_memory_usage=False),
)

# Atari on a GPU: what the GPU pong run measured (one H100, code 7084254169f8; README "Pong on one GPU
# in minutes"): 16 envs in the C++ vector env, refits in a worker on the GPU, 3 passes a refit. Side
# by side with true-reward PPO, learned-reward PPO ran at 0.933 of its steps/s (the worker kept up with
# every label: its last refit took 0.0 s after learn) and the two learning curves stayed close at equal
# steps; the CNN ensemble's gradient step is ~50x faster there than on 2 CPU cores, so more passes a
# refit cost the agent nothing. The worker and the 3 passes are now the CPU preset's too (above), so
# only the envs differ here. A --set field still overrides each of these.
ATARI_GPU = dict(vector_env=True, n_envs=16)

DEFAULT_PRESET = Preset(n_envs=8, timesteps=200_000, labels=200, clip_length=50,
                        ppo=dict(n_steps=256, batch_size=256, n_epochs=10))


def preset_for(name: str, atari: bool = False, device: str = "cpu") -> Preset:
    """The preset of a suite env; the Atari preset for any ALE game (with :data:`ATARI_GPU` when
    ``device`` is a CUDA device); SB3's PPO defaults and a 200-label budget for any other id."""
    if atari:
        preset = PRESETS.get(name, ATARI_PRESET)
        return replace(preset, **ATARI_GPU) if device.startswith("cuda") else preset
    return PRESETS.get(name, DEFAULT_PRESET)
