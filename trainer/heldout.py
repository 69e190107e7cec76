"""Held-out text that models trained on different data are all scored on (trainer.ablate).

The shipped texts are real prose that the sample crawl is not made of (samplecrawl/material.py reads
Sherlock Holmes, WikiText-2, inaugural speeches and news pages): two Project Gutenberg novels that the
repository ships as test fixtures, listed with their source in tests/fixtures/SOURCES.md. Any folder of
`*.txt` files can be added (`--eval-text`). The loss is the mean cross-entropy (nats per token) over
consecutive windows of the model's length, the same windows for every model sharing a tokenizer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (
    (ROOT / "tests" / "fixtures" / "prose" / "frankenstein_head.txt",
     "Frankenstein (Project Gutenberg 84, first 120 kB; tests/fixtures/SOURCES.md)"),
    (ROOT / "tests" / "fixtures" / "blending" / "pride_and_prejudice_head.txt",
     "Pride and Prejudice (Project Gutenberg 1342, first 250 kB; tests/fixtures/SOURCES.md)"),
)
GUTENBERG_START = "*** START OF"


class HeldOutError(ValueError):
    """A held-out text is missing or unreadable."""


@dataclass(frozen=True)
class HeldOutText:
    name: str
    path: Path
    source: str
    sha256: str

    def text(self) -> str:
        return body_of(self.path.read_bytes().decode("utf-8-sig", errors="replace"))

    def describe(self) -> dict:
        return {"name": self.name, "path": str(self.path), "source": self.source, "sha256": self.sha256}


def body_of(text: str) -> str:
    """The text without CRs and without a Project Gutenberg header (licence boilerplate, not prose)."""
    text = text.replace("\r\n", "\n")
    start = text.find(GUTENBERG_START)
    return text[text.find("\n", start) + 1:] if start >= 0 else text


def held_out(path: Path, source: str) -> HeldOutText:
    if not path.is_file():
        raise HeldOutError(f"held-out text {path} not found")
    return HeldOutText(path.stem, path, source, hashlib.sha256(path.read_bytes()).hexdigest())


def shipped_texts() -> list[HeldOutText]:
    return [held_out(path, source) for path, source in SHIPPED]


def folder_texts(folder: str | Path) -> list[HeldOutText]:
    """Every `*.txt` file under `folder`, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HeldOutError(f"--eval-text {folder}: no such folder")
    paths = sorted(folder.rglob("*.txt"))
    if not paths:
        raise HeldOutError(f"--eval-text {folder}: no .txt file in it")
    return [held_out(path, f"--eval-text {folder}") for path in paths]


def windows(tokenizer, text: str, seq_length: int, max_tokens: int) -> torch.Tensor:
    """[n, seq_length + 1] token windows: the text's first `max_tokens` tokens cut end to end."""
    ids = tokenizer.encode(text).ids[:max_tokens]
    n = (len(ids) - 1) // seq_length
    if n < 1:
        raise HeldOutError(f"held-out text of {len(ids)} tokens is shorter than one window of {seq_length + 1}")
    return torch.tensor([ids[i * seq_length: (i + 1) * seq_length + 1] for i in range(n)], dtype=torch.int64)


@torch.no_grad()
def mean_loss(model, token_windows: torch.Tensor, batch_size: int = 32) -> float:
    """Mean cross-entropy (nats per token) of `model` (trainer.inference.LoadedModel) on the windows."""
    total, count = 0.0, 0
    for start in range(0, len(token_windows), batch_size):
        batch = token_windows[start:start + batch_size]
        log_probs = model.log_probs(batch[:, :-1])
        picked = log_probs.gather(2, batch[:, 1:, None]).squeeze(2)
        total -= float(picked.double().sum())
        count += picked.numel()
    return total / count
