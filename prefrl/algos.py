"""The SB3 learners a run can use, and their settings: the preset's (rl-zoo's), overridden by the
user's ``--hyperparams key=value`` as rl-zoo's ``--hyperparams`` does.

On-policy learners (PPO, A2C) get the learned reward written into their rollout buffer a rollout at a
time; off-policy ones (SAC, TD3, DQN) into their replay buffer, every stored transition relabeled
after each reward-model update, as PEBBLE does (see :mod:`prefrl.learned_reward`).
"""

from __future__ import annotations

import ast
import inspect
import json
from typing import Any

import numpy as np
from gymnasium import spaces

from .errors import PrefrlError

__all__ = ["ALGOS", "OFF_POLICY", "algo_class", "check_algo", "check_hyperparams", "parse_hyperparams", "build_kwargs",
           "try_build"]

ALGOS = ("ppo", "a2c", "sac", "td3", "dqn")
OFF_POLICY = ("sac", "td3", "dqn")
_ACTIONS = {"sac": spaces.Box, "td3": spaces.Box, "dqn": spaces.Discrete}  # what SB3 accepts


def algo_class(name: str):
    """SB3's class for ``name``, one of :data:`ALGOS`."""
    import stable_baselines3 as sb3  # SB3 and torch load only where a policy is built

    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "sac": sb3.SAC, "td3": sb3.TD3, "dqn": sb3.DQN}[name]


def check_algo(name: str, env: str, action_space: spaces.Space) -> None:
    """Refuse a learner that cannot act in ``action_space``, in one line naming what can."""
    needed = _ACTIONS.get(name)
    if needed is not None and not isinstance(action_space, needed):
        fits = [a for a in ALGOS if _ACTIONS.get(a) in (None, type(action_space))]
        raise PrefrlError(f"--algo {name}: SB3's {name.upper()} needs {needed.__name__} actions, and {env!r} has "
                          f"{action_space}: use one of {', '.join(fits)}")


def parse_hyperparams(items: list[str]) -> dict[str, Any]:
    """``["learning_rate=3e-4", "policy_kwargs=dict(net_arch=[64, 64])"]`` -> a dict of JSON data.

    Values are Python literals (numbers, strings, lists, dicts, True/False/None), rl-zoo's
    ``dict(key=value, ...)``, or text kept as a string (``lin_0.001``, ``nn.Tanh``; made into SB3
    objects by :func:`build_kwargs`), so that ``config.json`` records them as data."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise PrefrlError(f"--hyperparams {item!r} is not KEY=VALUE: write e.g. --hyperparams learning_rate=3e-4")
        try:
            out[key] = _as_data(_literal(text))
        except (ValueError, SyntaxError, TypeError):
            out[key] = text
    return out


def _literal(text: str) -> Any:
    """A Python literal, or ``dict(k=literal, ...)`` (rl-zoo writes policy_kwargs so)."""
    tree = ast.parse(text.strip(), mode="eval").body
    return _eval_node(tree)


def _eval_node(node: ast.AST) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _eval_node(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {_eval_node(k): _eval_node(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval_node(e) for e in node.elts]
    if isinstance(node, ast.Attribute) or isinstance(node, ast.Name) and node.id not in ("True", "False", "None"):
        return ast.unparse(node)  # nn.ReLU, a string without quotes: kept as text
    return ast.literal_eval(node)


def _as_data(value: Any) -> Any:
    """JSON data (tuples as lists); a TypeError for what JSON cannot hold (the text is then kept)."""
    return json.loads(json.dumps(value))


def build_kwargs(name: str, kwargs: dict[str, Any], action_space: spaces.Space) -> dict[str, Any]:
    """SB3 keyword arguments from settings held as data: ``lin_<x>`` (rl-zoo's linear schedule) for a
    learning rate or clip range, rl-zoo's ``noise_type``/``noise_std`` as an ``action_noise``, torch
    activation and optimizer names (``nn.ReLU``) in ``policy_kwargs``."""
    from stable_baselines3.common.utils import LinearSchedule

    out = dict(kwargs)
    for key in ("learning_rate", "clip_range", "clip_range_vf"):
        value = out.get(key)
        if isinstance(value, str) and value.startswith("lin_"):
            try:
                out[key] = LinearSchedule(float(value[4:]), 0.0, 1.0)
            except ValueError:
                raise PrefrlError(f"--hyperparams {key}={value}: write lin_<number>, e.g. lin_0.001") from None
    noise_type, noise_std = out.pop("noise_type", None), out.pop("noise_std", None)
    if noise_type is not None or noise_std is not None:
        from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

        noises = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}
        if noise_type not in noises or not isinstance(noise_std, (int, float)):
            raise PrefrlError(f"--hyperparams noise_type={noise_type} noise_std={noise_std}: give both, noise_type one "
                              "of normal or ornstein-uhlenbeck and noise_std a number (rl-zoo's)")
        dim = int(np.prod(action_space.shape))
        out["action_noise"] = noises[noise_type](mean=np.zeros(dim), sigma=noise_std * np.ones(dim))
    policy_kwargs = out.get("policy_kwargs")
    if isinstance(policy_kwargs, dict):
        out["policy_kwargs"] = {k: _torch_name(k, v) if k in ("activation_fn", "optimizer_class") else v
                                for k, v in policy_kwargs.items()}
    return out


def _torch_name(key: str, value: Any) -> Any:
    """``nn.ReLU`` / ``torch.nn.ReLU`` / ``torch.optim.RMSprop`` / a full import path -> the class."""
    if not isinstance(value, str):
        return value
    import importlib

    import torch

    path = value.removeprefix("torch.")
    scope: Any = torch
    for part in path.split("."):
        scope = getattr(scope, part, None)
        if scope is None:
            break
    if scope is None and "." in value:  # a full import path, as config.json records classes
        module, _, attr = value.rpartition(".")
        try:
            scope = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            scope = None
    if not isinstance(scope, type):
        raise PrefrlError(f"--hyperparams policy_kwargs {key}={value!r} is not a torch class: write e.g. nn.ReLU")
    return scope


def check_hyperparams(name: str, hyperparams: dict[str, Any]) -> None:
    """Refuse a key the learner's constructor does not take, naming the ones it does."""
    cls = algo_class(name)
    params = set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env", "seed", "device", "verbose",
                                                                   "tensorboard_log", "_init_setup_model"}
    params |= {"noise_type", "noise_std"} if name in ("sac", "td3") else set()
    for key in hyperparams:
        if key == "n_envs":
            raise PrefrlError("--hyperparams n_envs: the parallel envs are a preset field: use --set n_envs=N")
        if key not in params:
            raise PrefrlError(f"--hyperparams {key}: SB3's {cls.__name__} takes no {key!r}; it takes "
                              f"{', '.join(sorted(params))}")


def try_build(name: str, env: str, kwargs: dict[str, Any]) -> None:
    """Build the learner once on one plain env with ``kwargs`` (the preset's and the user's), so that
    a value SB3 refuses is one line before any work, not a traceback after the labels before RL."""
    import warnings

    from stable_baselines3.common.vec_env import DummyVecEnv

    from .envs import make_env, resolve

    spec = resolve(env)
    venv = DummyVecEnv([lambda: make_env(env, fixed_horizon=False)])
    try:
        built = build_kwargs(name, kwargs, venv.action_space)
        if name in OFF_POLICY:  # its size is checked by SB3 as it fills, not here: allocate none
            built["buffer_size"] = 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            algo_class(name)("CnnPolicy" if spec.atari else "MlpPolicy", venv, device="cpu", verbose=0, **built)
    except PrefrlError:
        raise
    except Exception as exc:  # SB3 and torch say what they refuse in their own words
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PrefrlError(f"--hyperparams: SB3's {algo_class(name).__name__} refused them ({type(exc).__name__}: "
                          f"{first}); check each value against its documentation") from None
    finally:
        venv.close()
