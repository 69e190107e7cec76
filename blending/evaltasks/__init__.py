"""Downstream evaluation tasks, read from the files the repository ships (or any copy in the same format).

One loader for the two sides that need task text: the decontamination stage (dataprep) removes each
item's `texts` from training data; the evaluator (trainer) scores `context` + each of `choices`.
Neither side imports the other; both import this package, which needs only the standard library.

    items = load_task("piqa")                      # the shipped file
    items = load_task("piqa", "my/piqa.jsonl")     # another copy, same format
    items = load_jsonl_task("mytask", "x.jsonl", field="body")

Prompts follow lm-evaluation-harness's default templates where the shipped format allows, so its
per-item log-likelihoods can be compared with ours:

| task | context | choices |
|---|---|---|
| lambada | the passage up to its last space | the last space-separated word |
| hellaswag | "<activity>: <context>" | each ending |
| piqa, arc_easy | "Question: <q>\\nAnswer:" | each solution / answer |
| boolq | "<passage>\\nQuestion: <q>?\\nAnswer:" | " no", " yes" |
| copa | "<premise>, because" / ", therefore" | each alternative |
| openbookqa | the question stem | each answer |
| winogrande, wsc | the words both filled-in sentences share | the rest of each sentence (option + continuation) |
| anli_r1..3 | "<premise>\\nQuestion: <hypothesis> True, False, or Neither?\\nAnswer:" | " True", " Neither", " False" |
| wic | "Sentence 1: ..\\nSentence 2: ..\\nQuestion: Is the word '<w>' used in the same way in the two sentences above?\\nAnswer:" | " no", " yes" |
| race | "Article: <article>\\n\\nQuestion: <q>\\nAnswer:" (one item per question) | each option |

Every choice starts with the separator it needs (" word"). WinoGrande and WSC differ from the harness
there: it scores the shared continuation after each option; one context cannot express that, so here
each choice is the option plus the continuation after the shared words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from blending.evaltasks import formats
from blending.evaltasks.formats import TaskFormatError

DATA = Path(__file__).resolve().parent / "data"

# The shipped file (or folder) of each task, relative to DATA; shipped_tasks() keeps this order.
SHIPPED: dict[str, str] = {
    "lambada": "lambada_test.jsonl.xz",
    "hellaswag": "hellaswag_val_full.txt.bz2",
    "piqa": "llm-foundry/piqa.jsonl.xz",
    "winogrande": "llm-foundry/winogrande.jsonl.xz",
    "boolq": "llm-foundry/boolq.jsonl.xz",
    "copa": "llm-foundry/copa.jsonl.xz",
    "arc_easy": "llm-foundry/arc_easy.jsonl.xz",
    "openbookqa": "llm-foundry/openbook_qa.jsonl.xz",
    "wsc": "llm-foundry/winograd_wsc.jsonl.xz",
    "anli_r1": "anli_v1.0/R1_test.jsonl.xz",
    "anli_r2": "anli_v1.0/R2_test.jsonl.xz",
    "anli_r3": "anli_v1.0/R3_test.jsonl.xz",
    "wic": "WiC_dataset",
    "race": "hf_datasets_dummy/race_dummy_data.zip",
}

# Which fields of an item count for decontamination: the text a training document could contain.
# Prompt scaffolding ("Question:", "Answer:") never counts; neither do labels.
FIELDS: dict[str, tuple[str, ...]] = {
    "lambada": ("text",),
    "hellaswag": ("context", "endings"),  # context without its activity label
    "piqa": ("goal", "solutions"),
    "winogrande": ("sentences",),  # the sentence with each option filled in
    "boolq": ("passage", "question"),
    "copa": ("premise", "alternatives"),
    "arc_easy": ("question", "answers"),
    "openbookqa": ("question", "answers"),
    "wsc": ("sentences",),
    "anli_r1": ("premise", "hypothesis"),
    "anli_r2": ("premise", "hypothesis"),
    "anli_r3": ("premise", "hypothesis"),
    "wic": ("sentence1", "sentence2"),
    "race": ("article", "question"),
}

# The format each task's file is in (a parser in formats.py).
FORMATS: dict[str, str] = {
    "lambada": "lambada",
    "hellaswag": "hellaswag",
    "piqa": "question_choices",
    "winogrande": "partial_sentence",
    "boolq": "boolq",
    "copa": "copa",
    "arc_easy": "question_choices",
    "openbookqa": "stem_choices",
    "wsc": "partial_sentence",
    "anli_r1": "anli",
    "anli_r2": "anli",
    "anli_r3": "anli",
    "wic": "wic",
    "race": "race",
}


# The split of a task whose file holds one; WiC and RACE name theirs by folder.
SPLIT: dict[str, str] = {
    "lambada": "test",
    "hellaswag": "validation",
    "piqa": "validation",
    "winogrande": "validation",
    "boolq": "validation",
    "copa": "validation",
    "arc_easy": "test",
    "openbookqa": "test",
    "wsc": "test",
    "anli_r1": "test",
    "anli_r2": "test",
    "anli_r3": "test",
}

__all__ = ["FIELDS", "TaskFormatError", "TaskItem", "load_jsonl_task", "load_task", "shipped_path", "shipped_tasks"]


@dataclass(frozen=True)
class TaskItem:
    task: str
    index: int  # position in its file (its split's files, for RACE and WiC), from 0
    split: str  # "test", "validation" or "train"
    context: str  # the prompt before the answer
    choices: tuple[str, ...]  # continuations, each starting with its separator; () for a plain text task
    gold: int | None  # index into choices; None when the task has no answer
    texts: tuple[str, ...]  # the texts that count for decontamination (FIELDS)


def shipped_tasks() -> list[str]:
    return list(SHIPPED)


def shipped_path(name: str) -> Path:
    if name not in SHIPPED:
        raise KeyError(f"no shipped task {name!r}; shipped: {', '.join(SHIPPED)}")
    return DATA / SHIPPED[name]


def load_task(name: str, path: str | Path | None = None) -> list[TaskItem]:
    """Every item of a known task, from its shipped file or from `path` (a file in the same format;
    RACE: a zip or folder of RACE's per-passage files; WiC: a folder with dev/ and/or test/)."""
    if name not in FORMATS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(FORMATS)} (or load_jsonl_task for any JSONL)")
    source = Path(path) if path is not None else shipped_path(name)
    if not source.exists():
        raise FileNotFoundError(f"{name}: no such file or folder: {source}")
    parse = formats.PARSERS[FORMATS[name]]
    return [_item(name, record, FIELDS[name]) for record in parse(source, SPLIT.get(name, "test"))]


def load_jsonl_task(name: str, path: str | Path, field: str = "text") -> list[TaskItem]:
    """A task given as JSONL: each line's `field` is one item's text (context and the text that counts)."""
    items = []
    for index, line in formats.jsonl_lines(Path(path)):
        row = json.loads(line)
        if not isinstance(row.get(field), str):
            raise TaskFormatError(f"{path}:{index + 1}: no string field {field!r}")
        record = formats.Record(index, "test", row[field], (), None, {field: row[field]})
        items.append(_item(name, record, (field,)))
    return items


def _item(task: str, record: formats.Record, fields: tuple[str, ...]) -> TaskItem:
    texts: list[str] = []
    for name in fields:
        value = record.fields[name]
        texts.extend([value] if isinstance(value, str) else value)
    return TaskItem(task, record.index, record.split, record.context, record.choices, record.gold, tuple(texts))
