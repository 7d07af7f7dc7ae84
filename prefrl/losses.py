"""The loss core: one tested set of preference formulas for clips and for language models.

Tensors in, a scalar mean loss out (except :func:`kl_penalty`, a per-token reward term).
This module imports torch only.

Clip reward models use the Bradley–Terry and Plackett–Luce losses on learned returns. The language-model
path uses the same formulas on log-probability ratios (DPO is Bradley–Terry on β·log π/π_ref), plus
IPO, KTO and the pieces of PPO with a KL penalty and a pretraining mix (InstructGPT's PPO-ptx).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "bradley_terry_loss",
    "preference_probability",
    "plackett_luce_loss",
    "pairwise_ranking_loss",
    "dpo_loss",
    "ipo_loss",
    "kto_loss",
    "masked_mean",
    "ppo_policy_loss",
    "ppo_value_loss",
    "kl_penalty",
    "ptx_loss",
]

_KL_ESTIMATORS = ("k1", "k3", "abs", "mse")


def preference_probability(chosen: torch.Tensor, rejected: torch.Tensor, *, noise: float = 0.0) -> torch.Tensor:
    """P(chosen ≻ rejected) = (1 − noise)·σ(chosen − rejected) + noise/2.

    ``noise`` is the random-response probability: the chance the labeler answers at random
    (Christiano et al. 2017, §2.2.3, use 0.1). Shapes: (B,) and (B,) give (B,).
    """
    return (1.0 - noise) * torch.sigmoid(chosen - rejected) + noise / 2.0


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    *,
    noise: float = 0.0,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bradley–Terry cross-entropy, mean over the batch.

    With P = (1 − noise)·σ(chosen − rejected) + noise/2 and a target y (the probability that
    "chosen" is really preferred; 1 if omitted, 0.5 for a tie):

        loss = −mean(y·log P + (1 − y)·log(1 − P))

    Args:
        chosen: (B,) rewards (for clips: summed learned rewards) of the first item of each pair.
        rejected: (B,) rewards of the second item.
        noise: random-response probability in [0, 1).
        target: optional (B,) soft targets in [0, 1].
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    diff = chosen - rejected
    if target is None:
        target = torch.ones_like(diff)
    if noise == 0.0:
        return F.binary_cross_entropy_with_logits(diff, target)
    # log P and log(1 − P) written through logsigmoid so large |diff| stays finite.
    log_random = torch.full_like(diff, math.log(noise / 2.0))
    log_p = torch.logaddexp(math.log1p(-noise) + F.logsigmoid(diff), log_random)
    log_q = torch.logaddexp(math.log1p(-noise) + F.logsigmoid(-diff), log_random)
    return -(target * log_p + (1.0 - target) * log_q).mean()


def plackett_luce_loss(scores: torch.Tensor, ranking: torch.Tensor | None = None, *, noise: float = 0.0) -> torch.Tensor:
    """Negative log-likelihood of rankings under the Plackett–Luce model, mean over the batch.

    With π = ranking[b] (indices into scores[b], best first) and s = scores[b]:

        log PL(π) = Σ_{i=1}^{K−1} [ s_{π_i} − log Σ_{j≥i} exp(s_{π_j}) ]
        loss = −mean log P,  P = (1 − noise)·PL(π) + noise/K!

    ``noise`` is the random-response probability (the labeler answers with a uniformly random
    ranking), as in :func:`bradley_terry_loss`.

    Args:
        scores: (B, K) scores (e.g. learned clip returns) of the K items of each ranking.
        ranking: (B, K) long, each row a permutation of 0..K−1, best first; None: the items of
            ``scores`` are already in ranked order.
        noise: random-response probability in [0, 1).

    For K = 2 this is the Bradley–Terry loss of the first item over the second, noise included.
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    ordered = scores if ranking is None else torch.gather(scores, 1, ranking)
    # log Σ_{j≥i} exp: a reversed cumulative logsumexp
    tail = torch.logcumsumexp(ordered.flip(1), dim=1).flip(1)
    log_pl = (ordered - tail)[:, :-1].sum(1)
    if noise == 0.0:
        return -log_pl.mean()
    log_random = torch.full_like(log_pl, math.log(noise) - math.lgamma(ordered.shape[1] + 1))
    return -torch.logaddexp(math.log1p(-noise) + log_pl, log_random).mean()


def pairwise_ranking_loss(scores: torch.Tensor, ranking: torch.Tensor | None = None) -> torch.Tensor:
    """A K-wise ranking split into its C(K,2) pairs, each a Bradley–Terry loss of the better item over
    the worse, averaged with weight 1/C(K,2) per ranking (the InstructGPT-style pairwise form);
    mean over the batch. Shapes as :func:`plackett_luce_loss`; equal to it for K = 2."""
    ordered = scores if ranking is None else torch.gather(scores, 1, ranking)
    k = ordered.shape[1]
    i, j = torch.triu_indices(k, k, offset=1)
    return F.softplus(-(ordered[:, i] - ordered[:, j])).mean()


# --- Direct preference losses on a language model's log-probabilities -------------------------------


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Direct Preference Optimization (Rafailov et al. 2023, eq. 7), TRL's "sigmoid" loss.

        loss = −mean log σ(β·((πc − rc) − (πr − rr)))

    where πc, πr are the policy's and rc, rr the frozen reference model's log-probabilities of the
    chosen and rejected completions (usually summed over the completion's tokens). This is
    :func:`bradley_terry_loss` with the implicit rewards β·(πc − rc) and β·(πr − rr).

    Args:
        policy_chosen_logps: (B,) log π(chosen | prompt).
        policy_rejected_logps: (B,) log π(rejected | prompt).
        ref_chosen_logps: (B,) log π_ref(chosen | prompt), no gradient expected.
        ref_rejected_logps: (B,) log π_ref(rejected | prompt).
        beta: inverse temperature of the implicit reward; larger keeps the policy nearer the reference.
    """
    logits = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * logits).mean()


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    tau: float = 0.1,
) -> torch.Tensor:
    """Identity Preference Optimization (Azar et al. 2023), a squared loss that does not push
    the log-ratio gap to infinity on deterministic preferences.

        loss = mean(((πc − rc) − (πr − rr) − 1/(2τ))²)

    Shapes and meanings as :func:`dpo_loss`. Whether the log-probabilities are summed over the
    completion's tokens or averaged over them is the caller's choice: TRL averages them over tokens
    for IPO, so τ (and the target gap 1/(2τ)) is then per token; with sums it is per sequence.

    Args:
        tau: regularization strength, > 0; the loss is minimized at a log-ratio gap of 1/(2τ).
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0 (the target log-ratio gap is 1/(2·tau)), got tau={tau}")
    logits = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return ((logits - 1.0 / (2.0 * tau)) ** 2).mean()


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    kl_ref: torch.Tensor | float,
    beta: float = 0.1,
    lambda_d: float = 1.0,
    lambda_u: float = 1.0,
) -> torch.Tensor:
    """Kahneman–Tversky Optimization (Ethayarajh et al. 2024) on unpaired good/bad completions, as TRL.

    With ρ = policy_logps − ref_logps and the reference point z0 = max(kl_ref, 0), per item:

        desirable:   λD·(1 − σ(β·(ρ − z0)))
        undesirable: λU·(1 − σ(β·(z0 − ρ)))
        loss = mean over the batch

    The caller estimates ``kl_ref``, the KL of the policy against the reference: TRL takes the mean of
    ρ on mismatched prompt/completion pairs of the batch (completion of item i scored under the prompt
    of item j). It is a constant here: detached inside, so no gradient flows through it, and clamped at 0.

    Args:
        policy_logps: (B,) log π(completion | prompt), usually summed over tokens.
        ref_logps: (B,) log π_ref(completion | prompt).
        desirable: (B,) bool, True where the completion was labeled good.
        kl_ref: scalar tensor or float, the reference point before clamping.
        beta: inverse temperature of the implicit reward.
        lambda_d: weight of desirable items; lambda_u: weight of undesirable items (the paper balances
            them so λD·n_D / (λU·n_U) lies in [1, 4/3]).
    """
    if desirable.dtype != torch.bool:
        raise ValueError(f"desirable must be a bool tensor (True = good completion), got dtype={desirable.dtype}")
    z0 = torch.as_tensor(kl_ref, dtype=policy_logps.dtype, device=policy_logps.device).detach().clamp(min=0)
    rho = policy_logps - ref_logps
    desirable_losses = lambda_d * (1.0 - torch.sigmoid(beta * (rho - z0)))
    undesirable_losses = lambda_u * (1.0 - torch.sigmoid(beta * (z0 - rho)))
    return torch.where(desirable, desirable_losses, undesirable_losses).mean()


# --- PPO for the language-model path (InstructGPT; TRL's classic PPOTrainer) ----------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """sum(x·mask) / sum(mask): the mean over the entries where mask is 1 (all entries if None).

    ``mask`` has x's shape, 1 (or True) for tokens that count, 0 for padding and prompt tokens.
    An all-zero mask gives NaN.
    """
    if mask is None:
        return x.mean()
    if mask.shape != x.shape:
        raise ValueError(f"mask must have the shape of x, got mask {tuple(mask.shape)} and x {tuple(x.shape)}")
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum()


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float = 0.2,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7) as a loss to minimize.

        ratio = exp(logprobs − old_logprobs)
        loss = masked_mean(max(−A·ratio, −A·clamp(ratio, 1 − ε, 1 + ε)))

    The max takes the pessimistic branch: once the ratio leaves [1 − ε, 1 + ε] in the direction the
    advantage favours, the clipped branch wins and the token gives no gradient.

    Args:
        logprobs: (B, T) or (N,) log-probabilities of the sampled tokens under the current policy.
        old_logprobs: same shape, under the policy that sampled them (no gradient expected).
        advantages: same shape, e.g. GAE over the per-token rewards.
        clip_range: ε, > 0.
        mask: same shape, 1 for tokens that count (the completion), 0 for prompt and padding.
    """
    if clip_range <= 0:
        raise ValueError(f"clip_range must be > 0, got clip_range={clip_range}")
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return masked_mean(torch.max(unclipped, clipped), mask)


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip_range: float | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Value-head regression to the returns, optionally clipped around the old values (as TRL, SB3).

        no clip:   loss = 0.5·masked_mean((v − R)²)
        clip c:    v_clip = old + clamp(v − old, −c, c)
                   loss = 0.5·masked_mean(max((v − R)², (v_clip − R)²))

    Args:
        values: (B, T) or (N,) value predictions of the current value head.
        old_values: same shape, the predictions made when the rollout was collected (used only with
            ``clip_range``).
        returns: same shape, the regression targets (advantages + old values with GAE).
        clip_range: c, > 0, or None for no clipping. Note c is in the units of the learned reward.
        mask: same shape, 1 for tokens that count.
    """
    squared_error = (values - returns) ** 2
    if clip_range is None:
        return 0.5 * masked_mean(squared_error, mask)
    if clip_range <= 0:
        raise ValueError(f"clip_range must be > 0 or None (no clipping), got clip_range={clip_range}")
    values_clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    return 0.5 * masked_mean(torch.max(squared_error, (values_clipped - returns) ** 2), mask)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from tokens sampled from π; not reduced.

    This is a per-token reward term (InstructGPT subtracts β times it from the learned reward), so it
    keeps the shape of its inputs. With d = logprobs − ref_logprobs:

        "k1":  d                        unbiased, can be negative per token
        "k3":  (exp(−d) − 1) + d        unbiased and always ≥ 0, lower variance (Schulman,
                                        "Approximating KL divergence", 2020)
        "abs": |d|                      as TRL
        "mse": 0.5·d²                   as TRL ("k2"), biased

    Args:
        logprobs: (B, T) or (N,) log π of the sampled tokens.
        ref_logprobs: same shape, log π_ref of the same tokens.
        estimator: one of "k1", "k3", "abs", "mse".
    """
    d = logprobs - ref_logprobs
    if estimator == "k1":
        return d
    if estimator == "k3":
        return torch.expm1(-d) + d
    if estimator == "abs":
        return d.abs()
    if estimator == "mse":
        return 0.5 * d**2
    raise ValueError(f"unknown KL estimator {estimator!r}; choose one of {', '.join(map(repr, _KL_ESTIMATORS))}")


def ptx_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    coef: float = 1.0,
) -> torch.Tensor:
    """The pretraining-mix term of InstructGPT's PPO-ptx objective (Ouyang et al. 2022, eq. 2):

        loss = coef · masked_mean(−log softmax(logits)[targets])   (= −γ·E[log π(x)] over pretraining tokens)

    Added to the PPO loss to keep the policy's language modelling from regressing.

    Args:
        logits: (B, T, V) next-token logits of the policy on pretraining text.
        targets: (B, T) long, the next tokens.
        mask: (B, T), 1 for tokens that count, 0 for padding.
        coef: γ, the pretraining loss coefficient.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            "logits must be (B, T, V) and targets (B, T), "
            f"got logits {tuple(logits.shape)} and targets {tuple(targets.shape)}"
        )
    token_nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return coef * masked_mean(token_nll.view(targets.shape), mask)
