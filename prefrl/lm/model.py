"""A tiny causal language model in torch, with the heads RLHF needs (value and reward).

Built from a config on the spot: nothing is downloaded. Characters are tokens (printable ASCII),
plus BOS, SEP (between prompt and completion), EOS and PAD.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Tokenizer", "LMConfig", "TinyLM", "sequence_logprobs"]


class Tokenizer:
    """One token per printable ASCII character (32–126), then BOS, SEP, EOS and PAD.

    A sequence is ``BOS prompt SEP completion EOS``, right-padded with PAD.
    """

    first, last = 32, 126
    bos, sep, eos, pad = range(last - first + 1, last - first + 5)
    vocab_size = last - first + 5

    def encode(self, text: str) -> list[int]:
        bad = [c for c in text if not self.first <= ord(c) <= self.last]
        if bad:
            raise ValueError(f"character {bad[0]!r} in {text[:40]!r} is not printable ASCII: the tiny LM's "
                             "tokenizer reads characters 32-126 only")
        return [ord(c) - self.first for c in text]

    def decode(self, ids: list[int]) -> str:
        out = []
        for i in ids:
            if i == self.eos:
                break
            if i < self.bos:
                out.append(chr(i + self.first))
        return "".join(out)

    def batch(self, prompts: list[str], completions: list[str], device: str | torch.device = "cpu"):
        """Token ids (B, T) of ``BOS prompt SEP completion EOS`` right-padded, and the completion mask
        (B, T): 1 at the positions whose token is a completion token or its EOS (the tokens the
        model is scored on)."""
        rows, masks = [], []
        for prompt, completion in zip(prompts, completions):
            head = [self.bos, *self.encode(prompt), self.sep]
            tail = [*self.encode(completion), self.eos]
            rows.append(head + tail)
            masks.append([0] * len(head) + [1] * len(tail))
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width))
        for k, (row, m) in enumerate(zip(rows, masks)):
            ids[k, :len(row)] = torch.tensor(row)
            mask[k, :len(m)] = torch.tensor(m, dtype=torch.float32)
        return ids.to(device), mask.to(device)

    def prompts(self, prompts: list[str], device: str | torch.device = "cpu") -> torch.Tensor:
        """``BOS prompt SEP`` ids (B, P), left-padded with PAD so that generation appends in step."""
        rows = [[self.bos, *self.encode(p), self.sep] for p in prompts]
        width = max(map(len, rows))
        return torch.tensor([[self.pad] * (width - len(r)) + r for r in rows], dtype=torch.long, device=device)


@dataclass(frozen=True)
class LMConfig:
    """Size of the tiny causal LM (defaults: 2 layers, 64 wide, about 110k parameters)."""

    vocab_size: int = Tokenizer.vocab_size
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 64
    dropout: float = 0.0


_NEVER_WRITTEN = torch.zeros(Tokenizer.vocab_size, dtype=torch.bool)
_NEVER_WRITTEN[[Tokenizer.pad, Tokenizer.bos, Tokenizer.sep]] = True


class TinyLM(nn.Module):
    """A GPT-style decoder: token and position embeddings, pre-norm causal self-attention blocks,
    a language-model head and a scalar head (the value of PPO's policy, or a reward model's score).

    PAD tokens are never attended to; positions count from each row's first non-PAD token, so a
    left-padded prompt is read as if it were not padded.
    """

    def __init__(self, config: LMConfig = LMConfig()):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.position = nn.Embedding(config.max_len, config.d_model)
        layer = nn.TransformerEncoderLayer(config.d_model, config.n_heads, 4 * config.d_model, config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.scalar_head = nn.Linear(config.d_model, 1)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, d) of token ids (B, T)."""
        b, t = ids.shape
        if t > self.config.max_len:
            raise ValueError(f"sequence of {t} tokens is longer than the model's max_len={self.config.max_len}: "
                             "shorten prompts and completions or build the model with a larger max_len")
        real = ids != Tokenizer.pad
        pos = (real.cumsum(1) - 1).clamp_min(0)
        x = self.embed(ids) + self.position(pos)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=ids.device), 1)
        # A query never attends to PAD keys; a PAD query still sees itself (no all-masked rows).
        blocked = causal[None] | (~real)[:, None, :]
        blocked = blocked & ~torch.eye(t, dtype=torch.bool, device=ids.device)[None]
        mask = blocked.repeat_interleave(self.config.n_heads, 0)
        return self.norm(self.blocks(x, mask=mask))

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token logits (B, T, V) and the scalar head at every position (B, T).

        PAD, BOS and SEP are placed by the tokenizer, never written by the model: their logits are a
        constant −1e4, so every distribution the model gives (sampling, PPO's log-probs, the KL) is
        the same one over the tokens it can write. (With them free, PPO learned to move probability
        onto tokens generation never samples, which lowers log π of what it does sample and turns the
        KL penalty into a bonus.)
        """
        h = self.hidden(ids)
        logits = self.lm_head(h)
        logits = logits.masked_fill(_NEVER_WRITTEN.to(logits.device), -1e4)
        return logits, self.scalar_head(h).squeeze(-1)

    def score(self, ids: torch.Tensor) -> torch.Tensor:
        """The scalar head at each row's last non-PAD token (B,): a reward model's score of a sequence."""
        _, values = self(ids)
        last = (ids != Tokenizer.pad).long().cumsum(1).argmax(1)
        return values.gather(1, last[:, None]).squeeze(1)

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, max_new: int, generator: torch.Generator | None = None,
                 temperature: float = 1.0, min_new: int = 0) -> torch.Tensor:
        """Sample up to ``max_new`` tokens after left-padded prompts (B, P); returns (B, max_new). Tokens
        after a row's EOS are PAD; EOS is not sampled before ``min_new`` tokens (a task with a fixed
        completion length keeps the policy from ending early, outside what the reward model saw)."""
        ids = prompt_ids
        done = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
        out = []
        for step in range(max_new):
            logits = self(ids)[0][:, -1] / temperature
            if step < min_new:
                logits[:, Tokenizer.eos] = -1e4
            token = torch.multinomial(F.softmax(logits, -1), 1, generator=generator).squeeze(1)
            token = torch.where(done, torch.full_like(token, Tokenizer.pad), token)
            done |= token == Tokenizer.eos
            out.append(token)
            ids = torch.cat([ids, token[:, None]], 1)
        return torch.stack(out, 1)

    def save(self, path: str | Path) -> None:
        """``state_dict`` as plain tensors plus the config as JSON: no pickle."""
        path = Path(path)
        torch.save(self.state_dict(), path.with_suffix(".pt"))
        path.with_suffix(".json").write_text(json.dumps(asdict(self.config)))

    @classmethod
    def load(cls, path: str | Path) -> TinyLM:
        path = Path(path)
        model = cls(LMConfig(**json.loads(path.with_suffix(".json").read_text())))
        model.load_state_dict(torch.load(path.with_suffix(".pt"), weights_only=True))
        return model


def sequence_logprobs(model: TinyLM, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-probability of each token under ``model`` given the tokens before it, (B, T−1) for tokens
    1..T−1, times ``mask[:, 1:]`` (so summing over dim 1 gives a completion's log-probability). For
    what generation wrote, :func:`prefrl.lm.methods.generated_logprobs` gives the log-probs of the
    distribution it sampled from."""
    logits, _ = model(ids)
    logp = torch.log_softmax(logits[:, :-1], -1).gather(2, ids[:, 1:, None]).squeeze(2)
    return logp * mask[:, 1:]
