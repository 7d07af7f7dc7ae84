"""``prefrl lm``: the language-model path end to end, offline, in minutes on a CPU.

SFT on the base writer's data -> preferences on pairs (or K-wise rankings) of SFT samples, judged by
the task's rule -> either a reward model and PPO with a per-token KL penalty (and optional ptx), or
DPO / IPO / KTO straight from the preferences. The summary gives the reward model's held-out accuracy,
the rule's true score of the SFT model and of the final policy, and the final policy's KL to the SFT
model.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import PrefrlError
from ..progress import progress
from ..run_dir import RunDir, write_atomic
from .data import TopicTask, read_jsonl, write_jsonl
from .methods import (TOKENIZER, PPOSettings, RewardModel, clone, completion_logprobs, direct, fit_reward_model,
                      generated_logprobs, ppo, sft)
from .model import LMConfig, TinyLM

__all__ = ["LMRun", "run_lm", "METHODS"]

METHODS = ("ppo", "dpo", "ipo", "kto")


@dataclass
class LMRun:
    """One run of the language-model path.

    Attributes:
        method: ``ppo`` (reward model, then PPO with the KL penalty), ``dpo``, ``ipo`` or ``kto``.
        seed: seeds data, models and sampling.
        run_dir: where data, models and ``summary.json`` go (default ``runs/lm-<method>-s<seed>-<time>``).
        progress_bar: a bar through the four stages, on a terminal.
        labels: preference labels: pairs, or rankings with ``rank_size`` > 2.
        rank_size: 2: pairs (Bradley–Terry); K > 2: the rule ranks K samples (Plackett–Luce); ppo only.
        sft_rows, sft_steps: SFT data size and gradient steps.
        beta: DPO's and KTO's β, IPO's τ.
        kl_coef, ptx_coef, ppo_iterations, kl_estimator: see :class:`prefrl.lm.methods.PPOSettings`.
        sft_data, pair_data, kto_data: JSONL files to use instead of the synthetic task's (see
            :mod:`prefrl.lm.data`); with any of them the rule's true score is not reported.
        epochs: passes over the preferences (None: 5 for the reward model; 3 for DPO, IPO and KTO, which
            drift far from the SFT model with more: DPO with 6 reached KL 9.9 nats and a lower score).
    """

    method: str = "ppo"
    seed: int = 0
    run_dir: str | None = None
    progress_bar: bool = True
    labels: int = 2000
    rank_size: int = 2
    sft_rows: int = 20000
    sft_steps: int = 600
    beta: float = 0.1
    kl_coef: float = 0.2
    ptx_coef: float = 0.0
    kl_estimator: str = "k1"
    ppo_iterations: int = 150
    epochs: int | None = None
    sft_data: str | None = None
    pair_data: str | None = None
    kto_data: str | None = None

    def validate(self) -> None:
        if self.method not in METHODS:
            raise PrefrlError(f"--method {self.method!r} is not known: use one of {', '.join(METHODS)}")
        if self.labels < 10:
            raise PrefrlError(f"--labels {self.labels} is too few: give at least 10")
        if self.rank_size < 2 or (self.rank_size > 2 and self.method != "ppo"):
            raise PrefrlError(f"--rank-size {self.rank_size}: use 2, or K > 2 with --method ppo (the reward model "
                              "learns rankings; DPO, IPO and KTO take pairs or single labels)")
        if self.kl_estimator not in ("k1", "k3"):
            raise PrefrlError(f"--kl-estimator {self.kl_estimator!r} is not known: use k1 or k3")
        for name in ("beta", "kl_coef", "ptx_coef"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "beta" and value == 0):
                raise PrefrlError(f"--{name.replace('_', '-')} {value} must be a finite number "
                                  f"{'> 0' if name == 'beta' else '≥ 0'}")
        if self.ppo_iterations < 1:
            raise PrefrlError(f"--ppo-iterations {self.ppo_iterations} must be at least 1")
        if self.epochs is not None and self.epochs < 1:
            raise PrefrlError(f"--epochs {self.epochs} must be at least 1 pass over the preferences")
        if not 0 <= self.seed <= 2**31 - 1:
            raise PrefrlError(f"--seed {self.seed} must be in 0..{2**31 - 1}")
        for name in ("sft_data", "pair_data", "kto_data"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise PrefrlError(f"--{name.replace('_', '-')} {path} is not a file: give a JSONL file")


def _sample(model: TinyLM, prompts: list[str], generator: torch.Generator, lengths: tuple[int, int]) -> list[str]:
    """One completion per prompt, of ``lengths`` = (fewest, most) tokens, EOS included."""
    model.eval()
    out = []
    for i in range(0, len(prompts), 256):
        gen = model.generate(TOKENIZER.prompts(prompts[i:i + 256]), lengths[1], generator, min_new=lengths[0])
        out += [TOKENIZER.decode(row.tolist()) for row in gen]
    return out


@torch.no_grad()
def _evaluate(policy: TinyLM, ref: TinyLM, prompts: list[str], task: TopicTask | None, generator: torch.Generator,
              lengths: tuple[int, int]) -> dict:
    """The rule's mean true score of one sample per prompt, and the KL of policy from reference
    estimated on those samples: the mean over samples of Σ_t log π − log π_ref, both the
    distributions generation samples from."""
    policy.eval()
    scores, kls, first = [], [], None
    for i in range(0, len(prompts), 256):
        part = prompts[i:i + 256]
        prompt_ids = TOKENIZER.prompts(part)
        gen = policy.generate(prompt_ids, lengths[1], generator, min_new=lengths[0])
        ids, mask = torch.cat([prompt_ids, gen], 1), (gen != TOKENIZER.pad).float()
        start = prompt_ids.shape[1]
        kls.append(((generated_logprobs(policy, ids, start, lengths[0])[0]
                     - generated_logprobs(ref, ids, start, lengths[0])[0]) * mask).sum(1))
        completions = [TOKENIZER.decode(row.tolist()) for row in gen]
        first = first or {"prompt": part[0], "completion": completions[0]}
        if task is not None:
            scores += [task.score(p, c) for p, c in zip(part, completions)]
    return {"true_score": float(np.mean(scores)) if task else None, "kl_to_sft": float(torch.cat(kls).mean()),
            "example": first}


def _load(path: str, kind: str) -> list[dict]:
    try:
        return read_jsonl(path, kind)
    except ValueError as exc:
        raise PrefrlError(str(exc)) from None


def run_lm(config: LMRun) -> dict:
    """Run the language-model path; returns the summary (also written to ``summary.json``)."""
    config.validate()
    start = time.time()
    # The user's data files, read whole and checked before minutes of SFT.
    given = {kind: _load(path, kind) for kind, path in (("sft", config.sft_data), ("pairs", config.pair_data),
                                                        ("kto", config.kto_data)) if path is not None}
    # The run directory, held by this process until the run ends; one that holds a run is refused.
    with RunDir.create(config.run_dir, f"lm-{config.method}-s{config.seed}") as run, \
            progress(4, "SFT", config.progress_bar) as stages:
        return _run_lm(config, run.path, start, given, stages)


def _run_lm(config: LMRun, run_dir: Path, start: float, given: dict[str, list[dict]], stages) -> dict:
    """The path itself; ``stages`` is told as each of its four stages ends."""

    def stage_done(next_stage: str) -> None:
        stages.update()
        stages.set_description(next_stage)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    own_data = any((config.sft_data, config.pair_data, config.kto_data))
    task = TopicTask()
    write_atomic(run_dir / "config.json", json.dumps(asdict(config), indent=2))

    # 1. SFT
    sft_rows = given["sft"] if config.sft_data else task.sft_data(config.sft_rows, rng)
    write_jsonl(run_dir / "sft.jsonl", sft_rows)
    # Completions as long as the SFT data's, EOS included: a policy that ended sooner or ran longer
    # would be outside what the reward model was fitted on (and exploit it there).
    lengths = (min(len(r["completion"]) for r in sft_rows), max(len(r["completion"]) for r in sft_rows) + 1)
    longest = max(len(r["prompt"]) for r in sft_rows) + lengths[1] + 2
    model = TinyLM(LMConfig(max_len=max(64, longest)))
    sft_loss = sft(model, sft_rows, steps=config.sft_steps, rng=rng)
    model.save(run_dir / "sft")
    ref = model
    prompt_pool = [r["prompt"] for r in sft_rows]
    eval_prompts = task.prompts(512, np.random.default_rng(10_000 + config.seed)) if not own_data else \
        [prompt_pool[i] for i in np.random.default_rng(10_000).choice(len(prompt_pool), min(512, len(prompt_pool)), False)]
    before = _evaluate(ref, ref, eval_prompts, None if own_data else task, generator, lengths)

    def draw_prompts(n: int) -> list[str]:
        return task.prompts(n, rng) if not own_data else [prompt_pool[i] for i in rng.integers(0, len(prompt_pool), n)]

    # 2. Preferences on SFT samples, judged by the rule (or the user's files)
    stage_done("preferences")
    k = config.rank_size
    if config.method == "kto":
        if config.kto_data:
            pref_rows = given["kto"]
        else:
            prompts = draw_prompts(config.labels)
            completions = _sample(ref, prompts, generator, lengths)
            scores = np.array([task.score(p, c) for p, c in zip(prompts, completions)])
            threshold = np.median(scores)  # desirable: above the SFT model's median score
            pref_rows = [{"prompt": p, "completion": c, "label": bool(s > threshold)}
                         for p, c, s in zip(prompts, completions, scores)]
        write_jsonl(run_dir / "kto.jsonl", pref_rows)
    elif config.pair_data:
        pref_rows = given["pairs"]
    else:
        pref_rows = []
        while len(pref_rows) < config.labels:
            prompts = draw_prompts(config.labels)
            groups = [_sample(ref, prompts, generator, lengths) for _ in range(k)]
            for j, p in enumerate(prompts):
                items = sorted({g[j] for g in groups}, key=lambda c: -task.score(p, c))
                if len(items) < k or task.score(p, items[0]) == task.score(p, items[-1]):
                    continue  # the rule cannot tell these apart: not a preference
                if k == 2:
                    if task.score(p, items[0]) > task.score(p, items[1]):
                        pref_rows.append({"prompt": p, "chosen": items[0], "rejected": items[1]})
                elif len({task.score(p, c) for c in items}) == k:  # a strict ranking
                    pref_rows.append({"prompt": p, "completions": items})
        pref_rows = pref_rows[:config.labels]
        write_jsonl(run_dir / ("pairs.jsonl" if k == 2 else "rankings.jsonl"), pref_rows)
    held_out = max(1, round(len(pref_rows) / np.e)) if config.method == "ppo" else max(1, len(pref_rows) // 10)
    order = rng.permutation(len(pref_rows))
    val_rows = [pref_rows[i] for i in order[:held_out]]
    train_rows = [pref_rows[i] for i in order[held_out:]]

    # 3. The method
    stage_done(config.method)
    summary: dict = {"method": config.method, "seed": config.seed, "labels": len(pref_rows), "rank_size": k,
                     "sft_loss": round(sft_loss, 4)}
    if config.method == "ppo":
        rm = RewardModel(clone(model))
        summary.update(fit_reward_model(rm, train_rows, val_rows, epochs=config.epochs or 5, rng=rng))
        reference_prompts = draw_prompts(512)
        rm.normalize(reference_prompts, _sample(ref, reference_prompts, generator, lengths))
        rm.lm.save(run_dir / "reward_model")
        policy = clone(model)
        torch.nn.init.zeros_(policy.scalar_head.weight)
        torch.nn.init.zeros_(policy.scalar_head.bias)
        settings = PPOSettings(iterations=config.ppo_iterations, kl_coef=config.kl_coef, ptx_coef=config.ptx_coef,
                               kl_estimator=config.kl_estimator, min_new=lengths[0], max_new=lengths[1])
        log = ppo(policy, ref, rm, draw_prompts, settings, sft_rows=sft_rows, rng=rng, generator=generator)
        summary["rm_score_first_last"] = [round(log[0]["rm_score"], 3), round(log[-1]["rm_score"], 3)]
        write_jsonl(run_dir / "ppo_log.jsonl", log)
    else:
        policy = clone(model)
        losses = direct(config.method, policy, ref, train_rows, epochs=config.epochs or 3, beta=config.beta, rng=rng)
        summary["loss_first_last"] = [round(float(np.mean(losses[:5])), 4), round(float(np.mean(losses[-5:])), 4)]
        if config.method != "kto":  # the implicit reward β·log(π/π_ref) on held-out pairs
            with torch.no_grad():
                p = [r["prompt"] for r in val_rows]
                margin = (completion_logprobs(policy, p, [r["chosen"] for r in val_rows])
                          - completion_logprobs(ref, p, [r["chosen"] for r in val_rows])
                          - completion_logprobs(policy, p, [r["rejected"] for r in val_rows])
                          + completion_logprobs(ref, p, [r["rejected"] for r in val_rows]))
            summary["implicit_reward_accuracy"] = float((margin > 0).float().mean())
    policy.save(run_dir / "policy")
    stage_done("evaluation")
    after = _evaluate(policy, ref, eval_prompts, None if own_data else task, generator, lengths)
    summary.update({
        "true_score_sft": before["true_score"], "true_score_final": after["true_score"],
        "kl_to_sft": round(after["kl_to_sft"], 3), "example": after["example"],
        "wall_seconds": round(time.time() - start, 1), "run_dir": str(run_dir),
    })
    write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    stages.update()
    return summary
