"""The language-model path's training stages, each on the shared loss core (:mod:`prefrl.losses`):
SFT, the reward model (Bradley–Terry on pairs or Plackett–Luce on rankings), PPO with a per-token KL
penalty and an optional pretraining (ptx) mix, and DPO, IPO and KTO straight from preferences."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..losses import (bradley_terry_loss, dpo_loss, ipo_loss, kl_penalty, kto_loss, masked_mean, plackett_luce_loss,
                      ppo_policy_loss, ppo_value_loss, ptx_loss)
from .model import TinyLM, Tokenizer, sequence_logprobs

__all__ = ["sft", "completion_logprobs", "generated_logprobs", "RewardModel", "fit_reward_model", "PPOSettings", "ppo",
           "direct"]

TOKENIZER = Tokenizer()


def _batches(n: int, size: int, rng: np.random.Generator, epochs: int):
    for _ in range(epochs):
        perm = rng.permutation(n)
        for i in range(0, n, size):
            yield perm[i:i + size]


def sft(model: TinyLM, rows: list[dict], *, steps: int, batch_size: int = 64, lr: float = 3e-3,
        rng: np.random.Generator) -> float:
    """Supervised fine-tuning on prompt/completion rows: token cross-entropy on the completion (the same
    formula as PPO's ptx term, :func:`prefrl.losses.ptx_loss`). Returns the last 50 steps' mean loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    losses = []
    model.train()
    for _ in range(steps):
        pick = rng.integers(0, len(rows), batch_size)
        ids, mask = TOKENIZER.batch([rows[i]["prompt"] for i in pick], [rows[i]["completion"] for i in pick])
        logits, _ = model(ids)
        loss = ptx_loss(logits[:, :-1], ids[:, 1:], mask[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return float(np.mean(losses[-50:]))


def completion_logprobs(model: TinyLM, prompts: list[str], completions: list[str], average: bool = False) -> torch.Tensor:
    """Log-probability (B,) of each completion (and its EOS) given its prompt: summed over tokens, or
    averaged with ``average``."""
    ids, mask = TOKENIZER.batch(prompts, completions)
    logp = sequence_logprobs(model, ids, mask)
    return logp.sum(1) / mask[:, 1:].sum(1) if average else logp.sum(1)


class RewardModel:
    """A sequence scorer (a :class:`TinyLM` read at its last token, initialized from the SFT model, as
    in InstructGPT) and the affine map that makes the reference completions' rewards mean 0, std 1."""

    def __init__(self, lm: TinyLM):
        self.lm = lm
        self.offset, self.scale = 0.0, 1.0

    def raw(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        ids, _ = TOKENIZER.batch(prompts, completions)
        return self.lm.score(ids)

    @torch.no_grad()
    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        """The normalized reward (B,)."""
        self.lm.eval()
        return (self.raw(prompts, completions) - self.offset) / self.scale

    @torch.no_grad()
    def normalize(self, prompts: list[str], completions: list[str]) -> None:
        """Set the map so that these (reference) completions get rewards of mean 0 and std 1."""
        self.lm.eval()
        r = self.raw(prompts, completions)
        self.offset, self.scale = r.mean().item(), max(r.std().item(), 1e-6)


def fit_reward_model(rm: RewardModel, train: list[dict], val: list[dict], *, epochs: int, batch_size: int = 64,
                     lr: float = 1e-3, rng: np.random.Generator) -> dict:
    """Fit on pair rows (prompt/chosen/rejected: the Bradley–Terry loss) or ranking rows
    (prompt/completions best first: the Plackett–Luce loss); returns the held-out accuracy (pairs, or
    the pairs within rankings, ordered as labeled) and the last epoch's train loss."""
    ranked = "completions" in train[0]
    opt = torch.optim.AdamW(rm.lm.parameters(), lr=lr, weight_decay=0.01)

    def scores(rows: list[dict]) -> torch.Tensor:  # (B, K), best first
        items = [r["completions"] for r in rows] if ranked else [[r["chosen"], r["rejected"]] for r in rows]
        k = len(items[0])
        flat = rm.raw([r["prompt"] for r in rows for _ in range(k)], [c for group in items for c in group])
        return flat.reshape(len(rows), k)

    losses = []
    for idx in _batches(len(train), batch_size, rng, epochs):
        rm.lm.train()
        s = scores([train[i] for i in idx])
        loss = plackett_luce_loss(s) if ranked else bradley_terry_loss(s[:, 0], s[:, 1])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    rm.lm.eval()
    with torch.no_grad():
        s = torch.cat([scores(val[i:i + 256]) for i in range(0, len(val), 256)])
    k = s.shape[1]
    a, b = torch.triu_indices(k, k, offset=1)
    accuracy = (s[:, a] > s[:, b]).float().mean().item()
    return {"rm_accuracy": accuracy, "rm_train_loss": float(np.mean(losses[-max(1, len(train) // batch_size):]))}


@dataclass
class PPOSettings:
    """PPO on the language model with a per-token KL penalty against the reference (SFT) model.

    Attributes:
        iterations: rollouts of ``batch_size`` prompts each.
        kl_coef: β of the per-token penalty −β·KL_t added to the reward (the reward model's score
            comes at the last token).
        kl_estimator: ``k1`` (log π − log π_ref) or ``k3`` (Schulman's non-negative estimator).
        ptx_coef: γ of InstructGPT's PPO-ptx: γ × the SFT cross-entropy on a batch of SFT rows is
            added to every update (0: plain PPO).
        epochs, minibatch: passes over each rollout and its minibatch size.
        clip_range: PPO's ε, also the value clip.
        lr: Adam learning rate; gamma, lam: GAE over the completion's tokens.
        min_new, max_new: fewest and most tokens a completion may have (EOS included).
    """

    iterations: int = 150
    batch_size: int = 64
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    ptx_coef: float = 0.0
    epochs: int = 4
    minibatch: int = 32
    clip_range: float = 0.2
    vf_coef: float = 0.5
    lr: float = 1e-3
    gamma: float = 1.0
    lam: float = 0.95
    min_new: int = 0
    max_new: int = 12


def _gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Advantages (B, N) over the completion tokens; steps past a row's end (mask 0) get none."""
    adv = torch.zeros_like(rewards)
    last = torch.zeros(len(rewards))
    n = rewards.shape[1]
    for k in reversed(range(n)):
        live_next = mask[:, k + 1] if k + 1 < n else torch.zeros(len(rewards))
        next_value = values[:, k + 1] * live_next if k + 1 < n else 0.0
        delta = rewards[:, k] + gamma * next_value - values[:, k]
        last = delta + gamma * lam * live_next * last
        adv[:, k] = last
    return adv * mask


def generated_logprobs(model: TinyLM, ids: torch.Tensor, start: int, min_new: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """For tokens ids[:, start:] that :meth:`TinyLM.generate` wrote after prompts of width ``start``:
    each token's log-prob under the distribution generation samples from (EOS impossible for the
    first ``min_new``) and the value of the state it was chosen in, (B, N) each."""
    logits, values = model(ids)
    logits = logits[:, start - 1:-1]
    if min_new:
        logits = logits.clone()
        logits[:, :min_new, Tokenizer.eos] = -1e4
    logp = torch.log_softmax(logits, -1).gather(2, ids[:, start:, None]).squeeze(2)
    return logp, values[:, start - 1:-1]


def ppo(policy: TinyLM, ref: TinyLM, rm: RewardModel, prompts_fn, settings: PPOSettings, *,
        sft_rows: list[dict] | None, rng: np.random.Generator, generator: torch.Generator) -> list[dict]:
    """Optimize ``policy`` (a copy of the SFT model; its scalar head is the value) against the reward
    model with the per-token KL penalty; ``prompts_fn(n)`` draws prompts. Returns a log row per iteration."""
    if settings.ptx_coef and not sft_rows:
        raise ValueError("ptx_coef > 0 needs SFT rows to mix in")
    opt = torch.optim.Adam(policy.parameters(), lr=settings.lr)
    ref.eval()
    log = []
    for it in range(settings.iterations):
        prompts = prompts_fn(settings.batch_size)
        prompt_ids = TOKENIZER.prompts(prompts)
        policy.eval()
        gen = policy.generate(prompt_ids, settings.max_new, generator, min_new=settings.min_new)
        ids = torch.cat([prompt_ids, gen], 1)
        start = prompt_ids.shape[1]
        mask = (gen != Tokenizer.pad).float()
        with torch.no_grad():
            old_logp, old_values = generated_logprobs(policy, ids, start, settings.min_new)
            ref_logp, _ = generated_logprobs(ref, ids, start, settings.min_new)
            completions = [TOKENIZER.decode(row.tolist()) for row in gen]
            score = rm(prompts, completions)
            kl = kl_penalty(old_logp, ref_logp, settings.kl_estimator) * mask
            rewards = -settings.kl_coef * kl
            last = (mask.sum(1) - 1).long().clamp_min(0)
            rewards[torch.arange(len(gen)), last] += score
            adv = _gae(rewards, old_values * mask, mask, settings.gamma, settings.lam)
            returns = adv + old_values
            mean = masked_mean(adv, mask)
            std = masked_mean((adv - mean) ** 2, mask).sqrt()
            adv = (adv - mean) / (std + 1e-8) * mask
        policy.train()
        for idx in _batches(len(gen), settings.minibatch, rng, settings.epochs):
            idx = torch.as_tensor(idx)
            logp, values = generated_logprobs(policy, ids[idx], start, settings.min_new)
            loss = (ppo_policy_loss(logp, old_logp[idx], adv[idx], settings.clip_range, mask[idx])
                    + settings.vf_coef * ppo_value_loss(values, old_values[idx], returns[idx], settings.clip_range,
                                                        mask[idx]))
            if settings.ptx_coef:
                pick = rng.integers(0, len(sft_rows), settings.minibatch)
                sft_ids, sft_mask = TOKENIZER.batch([sft_rows[i]["prompt"] for i in pick],
                                                    [sft_rows[i]["completion"] for i in pick])
                logits, _ = policy(sft_ids)
                loss = loss + ptx_loss(logits[:, :-1], sft_ids[:, 1:], sft_mask[:, 1:], coef=settings.ptx_coef)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
        log.append({"iteration": it, "rm_score": score.mean().item(),
                    "kl": (kl_penalty(old_logp, ref_logp, "k1") * mask).sum(1).mean().item()})
    return log


def direct(method: str, policy: TinyLM, ref: TinyLM, rows: list[dict], *, epochs: int, beta: float,
           batch_size: int = 64, lr: float = 1e-4, rng: np.random.Generator) -> list[float]:
    """DPO or IPO on pair rows, or KTO on prompt/completion/label rows, straight from the preferences;
    the reference is the SFT model. Returns the loss of each step.

    Log-probabilities are summed over a completion's tokens for DPO and KTO, and averaged over them
    for IPO (as TRL does; IPO's τ is then a per-token margin). The learning rate is ten times lower
    than the reward model's: at 1e-3 DPO pushed the rejected completions' probability into characters
    the SFT model never wrote (KL 48 nats, the rule's score halved).
    """
    ref.eval()
    average = method == "ipo"
    with torch.no_grad():  # the reference's log-probs, once
        if method == "kto":
            ref_logps = completion_logprobs(ref, [r["prompt"] for r in rows], [r["completion"] for r in rows])
        else:
            ref_c = completion_logprobs(ref, [r["prompt"] for r in rows], [r["chosen"] for r in rows], average)
            ref_r = completion_logprobs(ref, [r["prompt"] for r in rows], [r["rejected"] for r in rows], average)
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    policy.train()
    for idx in _batches(len(rows), batch_size, rng, epochs):
        batch = [rows[i] for i in idx]
        prompts = [r["prompt"] for r in batch]
        if method == "kto":
            completions = [r["completion"] for r in batch]
            logps = completion_logprobs(policy, prompts, completions)
            with torch.no_grad():
                # TRL's KL estimate: each prompt with another row's completion (a mismatched pair),
                # policy minus reference, averaged, then clamped at 0 inside the loss.
                shifted = completions[1:] + completions[:1]
                kl_ref = (completion_logprobs(policy, prompts, shifted)
                          - completion_logprobs(ref, prompts, shifted)).mean()
            desirable = torch.tensor([bool(r["label"]) for r in batch])
            loss = kto_loss(logps, ref_logps[idx], desirable, kl_ref, beta=beta)
        else:
            pc = completion_logprobs(policy, prompts, [r["chosen"] for r in batch], average)
            pr = completion_logprobs(policy, prompts, [r["rejected"] for r in batch], average)
            formula = dpo_loss if method == "dpo" else ipo_loss
            loss = formula(pc, pr, ref_c[idx], ref_r[idx], beta) if method == "dpo" else formula(
                pc, pr, ref_c[idx], ref_r[idx], tau=beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def clone(model: TinyLM) -> TinyLM:
    """An independent copy (the policy and reward model start from the SFT weights)."""
    return copy.deepcopy(model)
