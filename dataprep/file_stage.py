"""Spark wiring shared by the stages: rows from input files (one task per file) or from a stage
folder, summed up on the way, then the accounted, atomic write; all in one Spark job.

Per-row logic lives in plain functions elsewhere; this module only moves rows. What stats.json's
`extra` reports (histograms, the first faults, unreadable files) is summed up per unit of work (an
input file, or a partition of a stage folder) by the task that computes the rows, and sent to the
driver through a Spark accumulator keyed by unit: a task that runs twice (a retry, a recomputation)
sends the same summary under the same key, so nothing is counted twice. The rows are computed once,
inside the write job, and never cached.

A file that cannot be read at all fails its task, and so the job, unless bad files are allowed; then
it is named in stats.json.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
from pyspark import AccumulatorParam, TaskContext
from pyspark.sql import DataFrame, SparkSession

from dataprep.config import OutputConfig
from dataprep.finished_files import FinishedFiles
from dataprep.stage_output import StageOutput
from dataprep.stats import StageStats

BAD_FILE = "_bad_file"  # the key of the one row a file reader yields for a file it cannot read
ROWS_PER_BATCH = 256
MAX_LISTED_FAULTS = 100  # faulty rows named in stats.json (all are counted)
_SPARK_TYPES = {pa.string(): "string", pa.float64(): "double", pa.int64(): "long", pa.int32(): "int"}


class BadInputFilesError(RuntimeError):
    """An input file that could not be read at all; --allow-bad-files goes on without it."""


@dataclass
class Summary:
    """What stats.json tells about a unit of work's rows, beyond the writer's counts."""

    counts: dict[tuple, int] = field(default_factory=dict)  # rows by the stage's summary key
    faults: list[tuple[str, str, str]] = field(default_factory=list)  # (origin, reason, detail), first ones
    bad_files: list[str] = field(default_factory=list)

    def add(self, key: tuple, fault: tuple[str, str, str] | None = None) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        if fault is not None and len(self.faults) < MAX_LISTED_FAULTS:
            self.faults.append(fault)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


class _MergeByUnit(AccumulatorParam):
    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, a: dict, b: dict) -> dict:  # noqa: N802 - Spark's name
        a.update(b)
        return a


class Summaries:
    """Per-unit summaries gathered by a Spark accumulator (see the module's docstring)."""

    def __init__(self, spark: SparkSession):
        self._accumulator = spark.sparkContext.accumulator({}, _MergeByUnit())

    def record(self, unit, summary: Summary) -> None:
        """In a task: this unit's summary (replacing one sent before for the same unit)."""
        self._accumulator.add({unit: summary})

    def merged(self) -> Summary:
        """On the driver, after the job: all units together, faults in file order."""
        total = Summary()
        for _unit, summary in sorted(self._accumulator.value.items(), key=lambda kv: str(kv[0])):
            for key, n in summary.counts.items():
                total.counts[key] = total.counts.get(key, 0) + n
            total.faults.extend(summary.faults)
            total.bad_files.extend(summary.bad_files)
        total.faults = sorted(total.faults, key=lambda f: _natural_key(f[0]))[:MAX_LISTED_FAULTS]
        total.bad_files.sort()
        return total


def _natural_key(origin: str) -> list:
    """"a.warc.gz@99" before "a.warc.gz@100": digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", origin)]


def spark_ddl(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {_SPARK_TYPES[f.type]}" for f in schema)


Describe = Callable[[dict], tuple[tuple, tuple[str, str, str] | None]]  # row -> (summary key, fault or None)


class _PerFile:
    """mapInArrow function: each input row carries a file index; yields that file's rows in batches
    and records the file's summary. With a store of finished files (per-file resume), a file found
    there is not read: its stored rows and summary are; a file read is stored as it goes."""

    def __init__(self, files, rows_of_file, schema, describe: Describe, summaries: Summaries, allow_bad_files,
                 store: FinishedFiles | None = None):
        self.files = files
        self.rows_of_file = rows_of_file
        self.schema = schema
        self.describe = describe
        self.summaries = summaries
        self.allow_bad_files = allow_bad_files
        self.store = store

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column("id").to_pylist():
                yield from self._file(index)

    def _file(self, index: int) -> Iterator[pa.RecordBatch]:
        path = self.files[index]
        stored = self.store.load(path) if self.store else None
        if stored is not None:
            batches, fields = stored
            yield from batches
            self.summaries.record(index, Summary(*FinishedFiles.summary_fields(fields)))
            return
        sink = self.store.writer(path, self.schema) if self.store else None
        summary = Summary()
        rows = []
        for row in self.rows_of_file(path):
            if BAD_FILE in row:
                if not self.allow_bad_files:
                    raise BadInputFilesError(row[BAD_FILE])
                summary.bad_files.append(row[BAD_FILE])
                continue
            summary.add(*self.describe(row))
            rows.append(row)
            if len(rows) == ROWS_PER_BATCH:
                yield self._batch(rows, sink)
                rows = []
        if rows:
            yield self._batch(rows, sink)
        if sink is not None:
            sink.commit(summary)
        self.summaries.record(index, summary)

    def _batch(self, rows: list[dict], sink) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_pylist(rows, schema=self.schema)
        if sink is not None:
            sink.write(batch)
        return batch


def rows_from_files(
    spark: SparkSession,
    files: list[str],
    rows_of_file: Callable[[str], Iterator[dict]],
    schema: pa.Schema,
    describe: Describe,
    summaries: Summaries,
    allow_bad_files: bool = False,
    store: FinishedFiles | None = None,
) -> DataFrame:
    """A frame of every file's rows, one Spark task per file. `rows_of_file(path)` must be picklable
    and yield dicts with the schema's fields (other keys are for `describe` only); for a file it cannot
    read it yields {BAD_FILE: why}. With `store`, finished files' rows come from it (see
    dataprep/finished_files.py)."""
    tasks = spark.range(0, len(files), 1, numPartitions=max(len(files), 1))
    return tasks.mapInArrow(
        _PerFile(files, rows_of_file, schema, describe, summaries, allow_bad_files, store), spark_ddl(schema)
    )


def bad_file_row(path: str, error: BaseException | str) -> dict:
    return {BAD_FILE: f"{path}: {error}"}


def partition_unit() -> int:
    """The unit of work of a task over a stage folder's rows: its partition (the same on a retry)."""
    return TaskContext.get().partitionId()


def histogram(pairs: list[tuple[str | None, int]]) -> dict[str, int]:
    """{value: rows}, most frequent first (ties by value); None shown as "unknown"."""
    merged: dict[str, int] = {}
    for value, n in pairs:
        key = "unknown" if value is None else str(value)
        merged[key] = merged.get(key, 0) + n
    return dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))


def faults_listed(summary: Summary) -> list[dict]:
    return [{"origin": o, "reason": r, "detail": d} for o, r, d in summary.faults]


def write_stage(
    frame: DataFrame,
    summaries: Summaries,
    out: StageOutput,
    config: OutputConfig,
    reasons: list[str],
    keep_dropped: bool,
    extra: Callable[[Summary, StageStats], dict],
    write_files: Callable[[str], None] | None = None,
    expected_in_rows: int | None = None,
    work_dir: str | None = None,
) -> StageStats:
    """Write the stage's rows (computing them), with `extra(merged summary, stats)` as stats.json's
    `extra`. The rows counted must be `expected_in_rows`, by default the rows the summaries counted."""
    expected = expected_in_rows if expected_in_rows is not None else (lambda: summaries.merged().rows)
    try:
        return out.write(
            frame, config, reasons, keep_dropped=keep_dropped, expected_in_rows=expected,
            extra=lambda stats: extra(summaries.merged(), stats), write_files=write_files, work_dir=work_dir,
        )
    except Exception as e:
        # A task's error reaches the driver as the text of its Python traceback.
        unreadable = re.search(rf"{BadInputFilesError.__name__}: (.*)", str(e))
        if unreadable is None:
            raise
        raise BadInputFilesError(
            f"input file cannot be read: {unreadable.group(1)}\n--allow-bad-files goes on without it"
        ) from None
