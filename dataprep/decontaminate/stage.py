"""The decontamination stage: documents -> the same documents with every downstream-task n-gram cut out.

1. The task index is built on the driver (index.py) from the shipped task files, or the `--task` ones,
   and shipped once to every executor (one copy per Python worker).
2. One Spark aggregation counts in how many documents each indexed n-gram occurs; those found in
   `frequent_ngram_count` or more documents are common phrases, exempt from matching.
3. Each document is matched, cut and split (rows.py); the output folder also holds the index
   (task_index.npz) and the task items found in the corpus (task_items_found.jsonl), so an evaluation
   can report the clean subset.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from blending.evaltasks import shipped_path
from blending.stage_stats import StageStats
from dataprep.config import config_hash
from dataprep.decontaminate.index import TaskIndex, TaskSource, build_from_sources, parse_task_args
from dataprep.decontaminate.matcher import REASONS, Matcher
from dataprep.decontaminate.rows import (
    CHARACTERS_REMOVED,
    COLUMNS,
    DOCUMENTS,
    ITEMS,
    MATCHES,
    PIECES,
    decontaminate_batch,
    distinct_keys,
    output_schema,
    unsigned,
)
from dataprep.framework.spark_rows import Tallies, partition_unit
from dataprep.framework.stage import Extras, Option, Transformed, WholeDatasetStage, per_worker
from dataprep.framework.stage import shipped_path as local_copy
from dataprep.framework.tally import Tally

INDEX_FILE = "task_index.npz"
ITEMS_FILE = "task_items_found.jsonl"


@dataclass(frozen=True)
class BuiltIndex:
    index: TaskIndex
    path: str  # a local file, named by its content, shipped to the executors
    size: int  # bytes


class DecontaminateStage(WholeDatasetStage):
    name = "decontaminate"
    help = "cut downstream-task 13-grams (with 200 characters each side) out of documents, splitting them"
    reasons = list(REASONS)
    section = "decontamination"
    columns = COLUMNS
    options = [Option(
        "--task", "a task to remove: NAME=PATH[:FIELD] (a JSONL file's FIELD, default text; or a shipped "
        "task's format at PATH), a shipped task's NAME, or 'shipped' (repeatable; default: the shipped tasks)",
        action="append", metavar="NAME=PATH[:FIELD]",
    )]
    epilog = (
        "Without --task the tasks shipped in blending/evaltasks/data are used; with --task only the named\n"
        "ones, and '--task shipped' adds the shipped set. The output folder holds task_index.npz (the\n"
        "n-grams used) and task_items_found.jsonl (task, split, index of each item found in the corpus)."
    )

    @functools.cached_property
    def sources(self) -> list[TaskSource]:
        return parse_task_args(self.opts.get("task"))

    @functools.cached_property
    def built_index(self) -> BuiltIndex:
        """The index of the configured tasks, built once on the driver into a local file."""
        folder = tempfile.mkdtemp(prefix="decontaminate-index-")
        atexit.register(shutil.rmtree, folder, True)
        index = build_from_sources(self.sources, self.config.ngram, self.config.min_task_words)
        staged = Path(folder) / INDEX_FILE
        size = index.save(staged)
        # Named by its content: Spark refuses a second file of the same name with other content.
        digest = hashlib.sha256(staged.read_bytes()).hexdigest()[:16]
        path = staged.rename(staged.with_name(f"task_index-{digest}.npz"))
        print(f"task index: {index.num_keys():,} n-grams of {len(index.tasks)} tasks, "
              f"{size / 1e6:.1f} MB, built in {index.build_seconds:.1f} s")
        return BuiltIndex(index, str(path), size)

    def config_hash(self) -> str:
        """Also the task files' contents: an edited task file is a different index."""
        tasks = [(s.name, s.field, _content_hash(s.path or str(shipped_path(s.name)))) for s in self.sources]
        return config_hash(self.config, self.ctx.config.output, tasks)

    def shipped_files(self) -> list[str]:
        return [self.built_index.path]

    def transform(self, documents: DataFrame) -> Transformed:
        """The documents cut and split; the figures: how many n-grams were exempt as frequent."""
        exempt = self.frequent_ngrams(documents)
        schema = output_schema(to_arrow_schema(documents.schema, timezone="UTC"))
        task = _DecontaminateTask(self.built_index.path, exempt, schema, self.config, self.ctx.tallies)
        return Transformed(documents.mapInArrow(task, from_arrow_schema(schema)), {"exempt_ngrams": len(exempt)})

    def frequent_ngrams(self, documents: DataFrame) -> list[tuple[int, int]]:
        """The indexed n-grams found in frequent_ngram_count or more documents (one aggregation)."""
        threshold = self.config.frequent_ngram_count
        if not threshold:
            return []
        found = documents.select("text").mapInArrow(_KeysTask(self.built_index.path), "length int, key long")
        # as many shuffle partitions as cores, not spark.sql.shuffle.partitions (200 tiny tasks locally)
        partitions = documents.sparkSession.sparkContext.defaultParallelism
        counted = found.repartition(partitions, "length", "key").groupBy("length", "key").count()
        frequent = counted.where(F.col("count") >= threshold).collect()
        return sorted((row["length"], unsigned(row["key"])) for row in frequent)

    def extras(self, tally: Tally, figures: dict, stats: StageStats) -> Extras:
        """stats.json's tally, the index and the task items found (task_items_found.jsonl)."""
        built = self.built_index
        index = built.index
        items = sorted((index.item(item_id), n) for item_id, n in tally.counters.get(ITEMS, {}).items())
        per_task = {name: 0 for name in index.tasks}
        for (task, _, _), _ in items:
            per_task[task] += 1
        extra = {
            "documents": {kind: tally.total(DOCUMENTS, kind) for kind in ("untouched", "split", *self.reasons)},
            "pieces_kept": tally.total(PIECES, "kept"),
            "pieces_dropped": tally.total(PIECES, "dropped"),
            "characters_removed": tally.total(CHARACTERS_REMOVED),
            "matches_per_task": {name: tally.total(MATCHES, name) for name in index.tasks},
            "items_found_per_task": per_task,
            "exempt_ngrams": figures["exempt_ngrams"],
            "index": {"ngrams": index.num_keys(), "bytes": built.size, "tasks": index.counts},
        }
        lines = [json.dumps({"task": task, "split": split, "index": i, "documents": n})
                 for (task, split, i), n in items]
        return Extras(extra, {INDEX_FILE: Path(built.path).read_bytes(),
                              ITEMS_FILE: ("\n".join(lines) + "\n" if lines else "").encode()})


def _content_hash(path: str) -> str:
    target = Path(path)
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(target).as_posix().encode() if target.is_dir() else b"")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _matcher(index_path: str, exempt: tuple[tuple[int, int], ...] = ()) -> Matcher:
    """One matcher per Python worker and exempt set; the index file is read once per worker."""
    index = per_worker(("decontaminate-index", index_path), lambda: TaskIndex.load(local_copy(index_path)))
    return per_worker(("decontaminate-matcher", index_path, hash(exempt)), lambda: Matcher(index, exempt))


class _KeysTask:
    """mapInArrow: (length, key) of each distinct indexed n-gram of each document."""

    def __init__(self, index_path: str):
        self.index_path = index_path

    def __call__(self, batches):
        matcher = _matcher(self.index_path)
        for batch in batches:
            lengths, keys = distinct_keys(batch.column("text").to_pylist(), matcher)
            yield pa.RecordBatch.from_arrays([pa.array(lengths, pa.int32()), pa.array(keys, pa.int64())],
                                             names=["length", "key"])


class _DecontaminateTask:
    """mapInArrow: documents -> output rows (rows.py), the partition's tally sent to the driver."""

    def __init__(self, index_path: str, exempt: list[tuple[int, int]], schema: pa.Schema, config, tallies: Tallies):
        self.index_path, self.exempt, self.schema = index_path, tuple(exempt), schema
        self.config, self.tallies = config, tallies

    def __call__(self, batches):
        matcher = _matcher(self.index_path, self.exempt)
        tally = Tally()
        c = self.config
        for batch in batches:
            yield decontaminate_batch(batch, matcher, self.schema, tally, c.cut_chars, c.min_piece_chars,
                                      c.max_splits)
        self.tallies.record(partition_unit(), tally)
