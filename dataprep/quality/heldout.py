"""The held-out evaluation set: prose and web junk from sources no training text comes from.

build_corpus.py writes it (data/heldout.jsonl.gz, rows {"label", "source", "group", "text"}) and keeps
these sources out of the training texts; train.py measures every model it writes on it (ROC AUC,
accuracy) and drops any training document whose group is in it, so the split holds even for training
files made elsewhere. What is held out (docs/quality.md):
  high  WikiText-2's test articles, the State of the Union addresses from HELDOUT_SPEECHES_FROM on, and
        the gold article bodies of the held-out benchmark hosts;
  low   the paragraphs jusText rejects (navigation, footers, cookie notices, link lists) of trafilatura's
        English evaluation pages and of the held-out benchmark hosts' pages, less their article text.
"""

from __future__ import annotations

from pathlib import Path

from dataprep.quality.corpus import DEFAULT_DATA, HIGH, LOW, Example, make_examples, read_documents, stable_hash

HELDOUT_FILE = DEFAULT_DATA / "heldout.jsonl.gz"
HELDOUT_SPEECHES_FROM = 1964  # the year after the last address today's training texts held
HELDOUT_HOST_SHARE = 4  # one benchmark host in this many is held out (by a hash of its name)


def is_heldout_host(group: str) -> bool:
    return stable_hash("heldout-host", group) % HELDOUT_HOST_SHARE == 0


def is_heldout_speech(name: str) -> bool:
    """`name` like 'state_union/1964-Johnson.txt'."""
    stem = name.rsplit("/", 1)[-1]
    return name.startswith("state_union/") and stem[:4].isdigit() and int(stem[:4]) >= HELDOUT_SPEECHES_FROM


def load_heldout(path: Path, window_chars: int, max_windows_per_group: int, seed: int) -> list[Example]:
    """The held-out documents as training-like windows: capped per group, classes balanced."""
    labelled = []
    for document in read_documents(path):
        label = document.get("label")
        if label not in (HIGH, LOW):
            raise ValueError(f"{path}: a held-out row needs \"label\": \"{HIGH}\" or \"{LOW}\"")
        labelled.append((label, document))
    return make_examples(labelled, window_chars, max_windows_per_group, seed)
