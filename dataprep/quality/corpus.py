"""Training examples: labelled documents -> equal-length windows, capped per group, classes balanced.

A document is {"source", "group", "text"}; `group` is the unit cross-validation splits by (a book, a
speech, an article, a web host). The default documents ship in dataprep/quality/data/ (build_corpus.py
makes them); `--positives`/`--negatives` files of the same JSONL form, or plain text files (one
document per file, the file its own group), replace them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dataprep.quality.text import windows

DEFAULT_DATA = Path(__file__).resolve().parent / "data"
HIGH, LOW = "high", "low"  # the two labels; quality_score is the probability of HIGH


@dataclass(frozen=True)
class Example:
    label: str
    source: str
    group: str
    text: str  # one window of the document's text, as it appears in the document


def stable_hash(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "big")


def read_documents(path: Path) -> Iterator[dict]:
    """JSONL (optionally gzipped) of {"text", "source"?, "group"?}, or a plain text file (one document)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    stem = path.name.split(".")[0]
    if ".jsonl" not in path.name and ".json" not in path.name:
        with opener(path, "rt", encoding="utf-8") as f:
            yield {"source": stem, "group": f"{stem}:{path.name}", "text": f.read()}
        return
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("text"), str):
                raise ValueError(f"{path}:{number + 1}: no \"text\" string")
            yield {"source": row.get("source", stem), "group": row.get("group", f"{path.name}:{number}"),
                   "text": row["text"], "label": row.get("label")}


def default_paths() -> tuple[list[Path], list[Path]]:
    return [DEFAULT_DATA / "positives.jsonl.gz"], [DEFAULT_DATA / "negatives.jsonl.gz"]


def make_examples(
    documents: Iterable[tuple[str, dict]], window_chars: int, max_windows_per_group: int, seed: int
) -> list[Example]:
    """(label, document) pairs -> windows, at most `max_windows_per_group` per (label, group) chosen
    evenly through the group's windows, then the larger class cut (by a seeded hash) to the smaller's
    size. Selection and order follow the documents' content, not the order they come in."""
    by_group: dict[tuple[str, str], list[Example]] = defaultdict(list)
    documents = sorted(documents, key=lambda ld: (ld[0], ld[1]["group"], ld[1]["source"], stable_hash(ld[1]["text"])))
    for label, document in documents:
        for window in windows(document["text"], window_chars):
            by_group[(label, document["group"])].append(Example(label, document["source"], document["group"], window))
    per_label: dict[str, list[Example]] = defaultdict(list)
    for (label, _group), examples in sorted(by_group.items()):
        step = max(1.0, len(examples) / max_windows_per_group)
        per_label[label].extend(examples[int(i * step)] for i in range(min(len(examples), max_windows_per_group)))
    if set(per_label) != {HIGH, LOW}:
        raise ValueError("training needs windows of both classes (positives and negatives)")
    size = min(len(v) for v in per_label.values())
    balanced = []
    for _label, examples in sorted(per_label.items()):
        examples.sort(key=lambda e: stable_hash(str(seed), e.group, e.source, e.text))
        balanced.extend(examples[:size])
    balanced.sort(key=lambda e: stable_hash(str(seed), "order", e.label, e.group, e.source, e.text))
    return balanced


def load_examples(
    positives: list[Path], negatives: list[Path], window_chars: int, max_windows_per_group: int, seed: int
) -> list[Example]:
    labelled = [(HIGH, d) for p in positives for d in read_documents(p)]
    labelled += [(LOW, d) for p in negatives for d in read_documents(p)]
    return make_examples(labelled, window_chars, max_windows_per_group, seed)
