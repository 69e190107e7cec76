"""The task n-gram index: every 13-gram of every task text, as 64-bit hashes, with the items it came from.

Texts of fewer than 8 words are ignored; texts of 8-12 words are used whole (one n-gram of their own
length), as in Megatron's filter_ngrams.py. Items of a "train" split are not indexed: only text the
model is evaluated on is a leak. The index is one .npz file: per n-gram length, the sorted distinct
hashes and (CSR) the items of each; the words of all task texts with their hashes (a document word
outside this vocabulary can be part of no match); the item table; counts per task.

    python -m dataprep.decontaminate.index --out tasks.npz [--task NAME=PATH[:FIELD] | shipped ...]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blending.evaltasks import FORMATS, TaskItem, load_jsonl_task, load_task, shipped_tasks
from blending.user_errors import reports_bad_input
from dataprep.decontaminate.tokens import window_hashes, word_hash, words

NOT_INDEXED_SPLITS = frozenset({"train"})
SHIPPED = "shipped"


@dataclass(frozen=True)
class TaskSource:
    """One task to index: a shipped task (path None), a known task's format at another path, or a JSONL
    file whose `field` holds the text (any name)."""

    name: str
    path: str | None = None
    field: str | None = None

    def load(self) -> list[TaskItem]:
        if self.path is None:
            return load_task(self.name)
        if self.field is None and self.name in FORMATS:
            return load_task(self.name, self.path)
        return load_jsonl_task(self.name, self.path, self.field or "text")


def parse_task_args(values: list[str] | None) -> list[TaskSource]:
    """--task values -> sources. None or [] -> the shipped tasks; "shipped" adds them to the others;
    NAME (a shipped task) alone; NAME=PATH[:FIELD]."""
    if not values:
        return [TaskSource(name) for name in shipped_tasks()]
    sources: list[TaskSource] = []
    for value in values:
        if value == SHIPPED:
            sources.extend(TaskSource(name) for name in shipped_tasks())
            continue
        name, sep, spec = value.partition("=")
        if not name or not re.fullmatch(r"[\w.-]+", name):
            raise ValueError(f"--task {value!r}: expected NAME=PATH[:FIELD], NAME (a shipped task) or 'shipped'")
        if not sep:
            if name not in shipped_tasks():
                raise ValueError(f"--task {value!r}: {name} is not a shipped task; give NAME=PATH[:FIELD]")
            sources.append(TaskSource(name))
            continue
        path, colon, task_field = spec.rpartition(":")
        if not colon or not re.fullmatch(r"\w+", task_field):  # no FIELD (a ':' inside the path is kept)
            path, task_field = spec, None
        sources.append(TaskSource(name, path, task_field))
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"--task names a task twice: {', '.join(duplicates)}")
    return sources


@dataclass
class TaskIndex:
    ngram: int
    min_words: int
    tasks: list[str]
    splits: list[str]
    item_task: np.ndarray  # int16, per item: position in tasks
    item_split: np.ndarray  # int8, per item: position in splits
    item_index: np.ndarray  # int32, per item: its index in its task file / split
    vocabulary: list[str]  # every word of the indexed texts, sorted
    word_values: np.ndarray  # uint64 hash of each vocabulary word
    keys: dict[int, np.ndarray]  # n-gram length -> sorted distinct uint64 hashes
    owner_starts: dict[int, np.ndarray]  # length -> int64 CSR offsets into owners (len(keys) + 1)
    owners: dict[int, np.ndarray]  # length -> int32 item ids
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # per task
    build_seconds: float = 0.0  # not saved: the same tasks give a byte-identical file

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(sorted(n for n, k in self.keys.items() if len(k)))

    def num_keys(self) -> int:
        return sum(len(k) for k in self.keys.values())

    def items_of(self, length: int, key: int) -> np.ndarray:
        """The item ids whose texts contain this n-gram (empty if it is not in the index)."""
        keys = self.keys.get(length)
        if keys is None or not len(keys):
            return np.empty(0, np.int32)
        i = int(np.searchsorted(keys, np.uint64(key)))
        if i == len(keys) or keys[i] != np.uint64(key):
            return np.empty(0, np.int32)
        return self.owners[length][self.owner_starts[length][i] : self.owner_starts[length][i + 1]]

    def item(self, item_id: int) -> tuple[str, str, int]:
        """(task, split, index) of an item id."""
        return (
            self.tasks[self.item_task[item_id]],
            self.splits[self.item_split[item_id]],
            int(self.item_index[item_id]),
        )

    def save(self, path: str | Path) -> int:
        """Write the index (.npz); returns its size in bytes."""
        meta = {
            "format": 1, "ngram": self.ngram, "min_words": self.min_words, "tasks": self.tasks,
            "splits": self.splits, "counts": self.counts,
        }
        arrays = {
            "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8),
            "vocabulary": np.frombuffer("\n".join(self.vocabulary).encode(), np.uint8),
            "word_values": self.word_values,
            "item_task": self.item_task,
            "item_split": self.item_split,
            "item_index": self.item_index,
        }
        for n in self.keys:
            arrays[f"keys_{n}"] = self.keys[n]
            arrays[f"owner_starts_{n}"] = self.owner_starts[n]
            arrays[f"owners_{n}"] = self.owners[n]
        # np.savez stamps each member with the current time; fixed stamps make the file deterministic
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                member = io.BytesIO()
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                archive.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
        Path(path).write_bytes(buffer.getvalue())
        return len(buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> TaskIndex:
        with np.load(path) as data:
            meta = json.loads(data["meta"].tobytes())
            if meta.get("format") != 1:
                raise ValueError(f"{path}: not a task index file of format 1")
            lengths = sorted(int(name.split("_")[1]) for name in data.files if name.startswith("keys_"))
            vocabulary = data["vocabulary"].tobytes().decode()
            return cls(
                ngram=meta["ngram"], min_words=meta["min_words"], tasks=meta["tasks"], splits=meta["splits"],
                item_task=data["item_task"], item_split=data["item_split"], item_index=data["item_index"],
                vocabulary=vocabulary.split("\n") if vocabulary else [], word_values=data["word_values"],
                keys={n: data[f"keys_{n}"] for n in lengths},
                owner_starts={n: data[f"owner_starts_{n}"] for n in lengths},
                owners={n: data[f"owners_{n}"] for n in lengths},
                counts=meta["counts"],
            )


def build_index(tasks: dict[str, list[TaskItem]], ngram: int = 13, min_words: int = 8) -> TaskIndex:
    """Index the texts of every item (not of train splits) of the given tasks."""
    started = time.perf_counter()
    names = list(tasks)
    splits: list[str] = []
    item_task, item_split, item_index = [], [], []
    # Texts grouped by the n-gram length they give (ngram, or their own length if shorter), so the hashes
    # of each group come from one vectorized pass over its words.
    groups: dict[int, tuple[list[str], list[int], list[int]]] = {}  # length -> (words, text lengths, item ids)
    counts: dict[str, dict[str, int]] = {}
    for task_id, name in enumerate(names):
        count = counts[name] = {"items": 0, "texts": 0, "texts_ignored": 0, "texts_whole": 0, "ngrams": 0}
        for item in tasks[name]:
            if item.split in NOT_INDEXED_SPLITS:
                continue
            if item.split not in splits:
                splits.append(item.split)
            item_id = len(item_task)
            item_task.append(task_id)
            item_split.append(splits.index(item.split))
            item_index.append(item.index)
            count["items"] += 1
            for text in item.texts:
                count["texts"] += 1
                text_words = words(text)
                if len(text_words) < min_words:
                    count["texts_ignored"] += 1
                    continue
                count["texts_whole"] += len(text_words) < ngram
                flat, lengths, owners = groups.setdefault(min(len(text_words), ngram), ([], [], []))
                flat.extend(text_words)
                lengths.append(len(text_words))
                owners.append(item_id)
    values = {w: word_hash(w) for w in sorted({w for flat, _, _ in groups.values() for w in flat})}
    item_task_array = np.array(item_task, np.int16)
    keys, owner_starts, owners = {}, {}, {}
    for length, (flat, lengths, text_items) in sorted(groups.items()):
        hashes, items = _group_hashes(values, flat, np.array(lengths), np.array(text_items, np.int32), length)
        if length == ngram:
            _count_distinct_per_task(hashes, item_task_array[items], names, counts)
        # one (hash, item) pair per item that has the n-gram, sorted by hash: the CSR of each key's items
        order = np.lexsort((items, hashes))
        hashes, items = hashes[order], items[order]
        distinct_pair = np.ones(len(hashes), bool)
        distinct_pair[1:] = (hashes[1:] != hashes[:-1]) | (items[1:] != items[:-1])
        hashes, items = hashes[distinct_pair], items[distinct_pair]
        first = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
        keys[length] = hashes[first]
        owner_starts[length] = np.append(first, len(hashes)).astype(np.int64)
        owners[length] = items
    return TaskIndex(
        ngram=ngram, min_words=min_words, tasks=names, splits=splits,
        item_task=item_task_array, item_split=np.array(item_split, np.int8),
        item_index=np.array(item_index, np.int32), vocabulary=list(values),
        word_values=np.fromiter(values.values(), np.uint64, len(values)),
        keys=keys, owner_starts=owner_starts, owners=owners, counts=counts,
        build_seconds=round(time.perf_counter() - started, 3),
    )


def _group_hashes(values: dict[str, int], flat: list[str], lengths: np.ndarray, text_items: np.ndarray,
                  length: int) -> tuple[np.ndarray, np.ndarray]:
    """The hash of every `length`-word window inside each text of a group (texts concatenated in
    `flat`), and the item id of each window."""
    all_values = np.fromiter(map(values.__getitem__, flat), np.uint64, len(flat))
    windows = window_hashes(all_values, (length,))[length]
    per_text = lengths - length + 1
    text_starts = np.cumsum(lengths) - lengths
    # positions of the windows that lie inside one text: each text's start plus 0 .. per_text - 1
    first_window = np.cumsum(per_text) - per_text
    positions = np.arange(per_text.sum()) + np.repeat(text_starts - first_window, per_text)
    return windows[positions], np.repeat(text_items, per_text)


def _count_distinct_per_task(hashes: np.ndarray, tasks: np.ndarray, names: list[str], counts: dict) -> None:
    order = np.lexsort((hashes, tasks))
    hashes, tasks = hashes[order], tasks[order]
    new = np.r_[True, (hashes[1:] != hashes[:-1]) | (tasks[1:] != tasks[:-1])]
    for task_id, n in zip(*np.unique(tasks[new], return_counts=True)):
        counts[names[task_id]]["ngrams"] = int(n)


def build_from_sources(sources: list[TaskSource], ngram: int = 13, min_words: int = 8) -> TaskIndex:
    started = time.perf_counter()
    index = build_index({s.name: s.load() for s in sources}, ngram, min_words)
    index.build_seconds = round(time.perf_counter() - started, 3)  # loading the task files included
    return index


def describe(index: TaskIndex, size_bytes: int | None = None) -> str:
    lines = [f"{'task':<12} {'items':>7} {'texts':>7} {'<' + str(index.min_words) + ' words':>9} "
             f"{'whole':>6} {str(index.ngram) + '-grams':>9}"]
    for name in index.tasks:
        c = index.counts[name]
        lines.append(f"{name:<12} {c['items']:>7,} {c['texts']:>7,} {c['texts_ignored']:>9,} "
                     f"{c['texts_whole']:>6,} {c['ngrams']:>9,}")
    size = f", {size_bytes / 1e6:.1f} MB" if size_bytes is not None else ""
    lines.append(f"{index.num_keys():,} distinct n-grams, {len(index.vocabulary):,} words; "
                 f"built in {index.build_seconds:.1f} s{size}")
    return "\n".join(lines)


@reports_bad_input("python -m dataprep.decontaminate.index")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataprep.decontaminate.index", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the index file to write (.npz)")
    parser.add_argument("--task", action="append", metavar="NAME=PATH[:FIELD]",
                        help="a task to index (repeatable); default: the shipped tasks; 'shipped' adds them")
    parser.add_argument("--config", help="YAML overriding the paper's defaults (decontamination section)")
    args = parser.parse_args(argv)
    from dataprep.config import DataprepConfig

    config = DataprepConfig.load(args.config).decontamination
    index = build_from_sources(parse_task_args(args.task), config.ngram, config.min_task_words)
    size = index.save(args.out)
    print(describe(index, size))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
