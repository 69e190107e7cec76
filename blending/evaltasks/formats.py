"""Parsers of the task file formats: each yields one Record per item, in file order.

Compressed files (.xz, .bz2, .gz) are read as they are; a path without its compression suffix also
finds the compressed file beside it.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

OPENERS = {".xz": lzma.open, ".bz2": bz2.open, ".gz": gzip.open}


class TaskFormatError(ValueError):
    """A task file that does not have the expected format (names the file and line)."""


@dataclass(frozen=True)
class Record:
    index: int
    split: str
    context: str
    choices: tuple[str, ...]
    gold: int | None
    fields: dict[str, str | list[str]]  # named texts; evaltasks.FIELDS says which count


def _resolve(path: Path) -> Path:
    if path.exists():
        return path
    for suffix in OPENERS:
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no such file: {path} (nor {path.name}.xz/.bz2/.gz)")


def read_text(path: Path) -> str:
    path = _resolve(path)
    opener = OPENERS.get(path.suffix, open)
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read()


def jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line index, line) for every non-empty line; the index counts items, so blank lines are skipped."""
    index = 0
    for line in read_text(path).splitlines():
        if line.strip():
            yield index, line
            index += 1


def _jsonl(path: Path, keys: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    for index, line in jsonl_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskFormatError(f"{path}:{index + 1}: not JSON ({e})") from None
        missing = [key for key in keys if key not in row]
        if missing:
            raise TaskFormatError(f"{path}:{index + 1}: missing {', '.join(missing)}")
        yield index, row


def _spaced(choices: list[str]) -> tuple[str, ...]:
    return tuple(" " + choice for choice in choices)


def lambada(path: Path, split: str) -> Iterator[Record]:
    # The target is the last space-separated word (as lm-evaluation-harness's lambada_openai splits it).
    for index, row in _jsonl(path, ("text",)):
        text = row["text"]
        context, _, last = text.rpartition(" ")
        yield Record(index, split, context, (" " + last,), 0, {"text": text})


def hellaswag(path: Path, split: str) -> Iterator[Record]:
    # Six lines per item: "<activity label>: <context>", the gold ending's number, four endings.
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) % 6:
        raise TaskFormatError(f"{path}: {len(lines)} lines, not a multiple of 6")
    for index in range(len(lines) // 6):
        context, gold, *endings = lines[6 * index : 6 * index + 6]
        if not gold.strip().isdigit() or not 0 <= int(gold) < 4:
            raise TaskFormatError(f"{path}:{6 * index + 2}: gold ending {gold!r} is not 0-3")
        _, _, unlabelled = context.partition(": ")
        fields = {"context": unlabelled or context, "endings": endings}
        yield Record(index, split, context, _spaced(endings), int(gold), fields)


def _strip_question(query: str) -> str:
    return query.removeprefix("Question: ").strip()


def question_choices(path: Path, split: str) -> Iterator[Record]:
    # PIQA and ARC as "Question: <q>" with a list of choices.
    for index, row in _jsonl(path, ("query", "choices", "gold")):
        question = _strip_question(row["query"])
        fields = {"goal": question, "question": question, "solutions": row["choices"], "answers": row["choices"]}
        context = f"Question: {question}\nAnswer:"
        yield Record(index, split, context, _spaced(row["choices"]), row["gold"], fields)


def stem_choices(path: Path, split: str) -> Iterator[Record]:
    for index, row in _jsonl(path, ("query", "choices", "gold")):
        fields = {"question": row["query"], "answers": row["choices"]}
        yield Record(index, split, row["query"], _spaced(row["choices"]), row["gold"], fields)


def boolq(path: Path, split: str) -> Iterator[Record]:
    for index, row in _jsonl(path, ("query", "choices", "gold")):
        passage, sep, question = row["query"].removeprefix("Passage: ").rpartition("\nQuestion: ")
        if not sep:
            raise TaskFormatError(f"{path}:{index + 1}: no '\\nQuestion: ' in the query")
        context = f"{passage}\nQuestion: {question}\nAnswer:"
        fields = {"passage": passage, "question": question}
        yield Record(index, split, context, _spaced(row["choices"]), row["gold"], fields)


def copa(path: Path, split: str) -> Iterator[Record]:
    # "<premise without its period>, because" (or ", therefore"); alternatives start lowercase.
    for index, row in _jsonl(path, ("query", "choices", "gold")):
        premise = re.sub(r",? (because|therefore)$", "", row["query"])
        fields = {"premise": premise, "alternatives": row["choices"]}
        yield Record(index, split, row["query"], _spaced(row["choices"]), row["gold"], fields)


def partial_sentence(path: Path, split: str) -> Iterator[Record]:
    # WinoGrande and WSC: two sentence beginnings (each ending in one option) and a shared continuation.
    for index, row in _jsonl(path, ("context_options", "continuation", "gold")):
        options = row["context_options"]
        shared = os.path.commonprefix(options)
        cut = shared.rfind(" ") if " " in shared else 0
        context = options[0][:cut]
        choices = tuple(option[cut:] + " " + row["continuation"] for option in options)
        fields = {"sentences": [option + " " + row["continuation"] for option in options]}
        yield Record(index, split, context, choices, row["gold"], fields)


ANLI_LABELS = {"e": 0, "n": 1, "c": 2}  # choices True, Neither, False


def anli(path: Path, split: str) -> Iterator[Record]:
    for index, row in _jsonl(path, ("context", "hypothesis", "label")):
        if row["label"] not in ANLI_LABELS:
            raise TaskFormatError(f"{path}:{index + 1}: label {row['label']!r} is not e, n or c")
        context = f"{row['context']}\nQuestion: {row['hypothesis']} True, False, or Neither?\nAnswer:"
        fields = {"premise": row["context"], "hypothesis": row["hypothesis"]}
        yield Record(index, split, context, (" True", " Neither", " False"), ANLI_LABELS[row["label"]], fields)


SPLITS = {"dev": "validation", "validation": "validation", "val": "validation", "test": "test", "train": "train"}


def wic(path: Path, split: str) -> Iterator[Record]:
    # A folder with <split>/<split>.data.txt (word, PoS, index1-index2, sentence1, sentence2; tokenized)
    # and <split>/<split>.gold.txt (T or F); splits come from the folder names, items are numbered
    # within each split.
    found = False
    for name in ("dev", "test", "train"):
        data_path = path / name / f"{name}.data.txt"
        try:
            data = read_text(data_path).splitlines()
        except FileNotFoundError:
            continue
        found = True
        gold = read_text(path / name / f"{name}.gold.txt").splitlines()
        if len(gold) != len(data):
            raise TaskFormatError(f"{data_path}: {len(data)} items but {len(gold)} gold labels")
        for index, (line, label) in enumerate(zip(data, gold)):
            parts = line.split("\t")
            if len(parts) != 5 or label.strip() not in ("T", "F"):
                raise TaskFormatError(f"{data_path}:{index + 1}: not 'word<TAB>PoS<TAB>i-j<TAB>s1<TAB>s2' with T/F")
            _, _, positions, sentence1, sentence2 = parts
            word = sentence1.split(" ")[int(positions.split("-")[0])]
            context = (
                f"Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: Is the word '{word}' used in "
                "the same way in the two sentences above?\nAnswer:"
            )
            fields = {"sentence1": sentence1, "sentence2": sentence2}
            yield Record(index, SPLITS[name], context, (" no", " yes"), int(label.strip() == "T"), fields)
    if not found:
        raise FileNotFoundError(f"{path}: no dev/dev.data.txt or test/test.data.txt (WiC's layout)")


def _race_files(path: Path) -> list[tuple[tuple, str, str]]:
    """((split order, level, passage number), split, JSON text) of every RACE passage file."""
    if path.is_dir():
        entries = [(p.relative_to(path).as_posix(), p.read_bytes) for p in sorted(path.rglob("*.txt"))]
    else:
        archive = zipfile.ZipFile(path)
        entries = [(name, lambda name=name: archive.read(name)) for name in archive.namelist()]
    files = []
    for name, read in entries:
        parts = name.split("/")
        if "__MACOSX" in parts or parts[-1].startswith(".") or not parts[-1].endswith(".txt"):
            continue
        split = next((SPLITS[p] for p in parts[:-1] if p in SPLITS), None)
        if split is None or not parts[-1][:-4].isdigit():
            continue
        level = parts[-2]
        order = (["test", "validation", "train"].index(split), level, int(parts[-1][:-4]))
        files.append((order, split, io.TextIOWrapper(io.BytesIO(read()), encoding="utf-8").read()))
    return sorted(files)


def race(path: Path, split: str) -> Iterator[Record]:
    # One file per passage ({"article", "questions", "options", "answers"}) in <split>/<level>/<n>.txt;
    # one item per question, numbered within each split (levels by name, then files by number).
    files = _race_files(path)
    if not files:
        raise FileNotFoundError(f"{path}: no RACE passage files (<split>/<level>/<n>.txt)")
    counters: dict[str, int] = {}
    for _, file_split, text in files:
        passage = json.loads(text)
        for question, options, answer in zip(passage["questions"], passage["options"], passage["answers"]):
            if answer not in "ABCD" or len(answer) != 1:
                raise TaskFormatError(f"{path}: {passage.get('id')}: answer {answer!r} is not A-D")
            index = counters.get(file_split, 0)
            counters[file_split] = index + 1
            context = f"Article: {passage['article']}\n\nQuestion: {question}\nAnswer:"
            fields = {"article": passage["article"], "question": question}
            yield Record(index, file_split, context, _spaced(options), "ABCD".index(answer), fields)


PARSERS: dict[str, Callable[[Path, str], Iterator[Record]]] = {
    "lambada": lambada,
    "hellaswag": hellaswag,
    "question_choices": question_choices,
    "stem_choices": stem_choices,
    "boolq": boolq,
    "copa": copa,
    "partial_sentence": partial_sentence,
    "anli": anli,
    "wic": wic,
    "race": race,
}
