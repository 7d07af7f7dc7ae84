"""Data for the language-model path: a synthetic task whose preference is a known rule, and JSONL in
the shapes the ecosystem uses (TRL, Hugging Face datasets), so a user can bring their own.

- SFT: ``{"prompt": ..., "completion": ...}`` a line.
- Pairs: ``{"prompt": ..., "chosen": ..., "rejected": ...}`` a line.
- Rankings (K-wise): ``{"prompt": ..., "completions": [best, ..., worst]}`` a line.
- KTO: ``{"prompt": ..., "completion": ..., "label": true|false}`` a line (true: desirable).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["TopicTask", "read_jsonl", "write_jsonl", "FORMATS"]

FORMATS = {
    "sft": ("prompt", "completion"),
    "pairs": ("prompt", "chosen", "rejected"),
    "rankings": ("prompt", "completions"),
    "kto": ("prompt", "completion", "label"),
}


class TopicTask:
    """Stay on topic: a prompt is ``prompt_len`` distinct letters of a 16-letter alphabet; a completion
    is letters; the true score is the share of the first ``completion_len`` completion letters that
    occur in the prompt (a short completion scores its missing letters as 0).

    The SFT data come from a base writer that picks a prompt letter with probability ``on_topic`` and
    otherwise any letter, for ``completion_len`` letters: its mean score is about
    on_topic + (1 − on_topic)·prompt_len/16 (0.44 by default), so there is room above it.
    """

    alphabet = "abcdefghijklmnop"

    def __init__(self, prompt_len: int = 4, completion_len: int = 8, on_topic: float = 0.25):
        self.prompt_len, self.completion_len, self.on_topic = prompt_len, completion_len, on_topic

    def prompts(self, n: int, rng: np.random.Generator) -> list[str]:
        return ["".join(rng.choice(list(self.alphabet), self.prompt_len, replace=False)) for _ in range(n)]

    def base_completion(self, prompt: str, rng: np.random.Generator) -> str:
        letters = [rng.choice(list(prompt)) if rng.random() < self.on_topic else rng.choice(list(self.alphabet))
                   for _ in range(self.completion_len)]
        return "".join(letters)

    def score(self, prompt: str, completion: str) -> float:
        """The rule: share of the first ``completion_len`` letters of the completion found in the prompt."""
        return sum(c in prompt for c in completion[:self.completion_len]) / self.completion_len

    def sft_data(self, n: int, rng: np.random.Generator) -> list[dict]:
        return [{"prompt": p, "completion": self.base_completion(p, rng)} for p in self.prompts(n, rng)]


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    with Path(path).open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_jsonl(path: str | Path, kind: str) -> list[dict]:
    """Rows of a JSONL file in one of :data:`FORMATS`; a bad line raises ValueError naming the file,
    the line and the keys it needs."""
    keys = FORMATS[kind]
    rows = []
    with Path(path).open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path} line {n} is not UTF-8 text (byte {exc.start + 1} of the line): save the "
                                 "file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {n} is not JSON ({exc.msg}): each line must be one JSON object") from None
            missing = [k for k in keys if k not in row] if isinstance(row, dict) else list(keys)
            if missing:
                raise ValueError(f"{path} line {n} lacks {', '.join(repr(k) for k in missing)}: {kind} data needs "
                                 f"{', '.join(keys)} on every line")
            if kind == "rankings" and (not isinstance(row["completions"], list) or len(row["completions"]) < 2):
                raise ValueError(f"{path} line {n}: 'completions' must list at least 2 completions, best first")
            if kind == "kto" and not isinstance(row["label"], bool):
                raise ValueError(f"{path} line {n}: 'label' must be true (desirable) or false, got {row['label']!r}")
            texts = ([row["prompt"], *row["completions"]] if kind == "rankings" else
                     [row[k] for k in keys if k != "label"])
            if not all(isinstance(t, str) for t in texts):
                raise ValueError(f"{path} line {n}: prompts and completions must be text (JSON strings)")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no {kind} rows: give one JSON object a line with {', '.join(keys)}")
    return rows
