"""Spark wiring shared by the stages that read files (extract, ingest) and the ones that read a stage
folder (cleanup): rows from files with one task per file, then the accounted, atomic write.

Per-row logic lives in plain functions elsewhere; this module only moves rows. The stage frame is
persisted while stats are gathered from it (histograms for stats.json's `extra`), so every record is
processed exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dataprep.config import OutputConfig
from dataprep.stage_output import StageOutput
from dataprep.stats import StageStats

BAD_FILE = "_bad_file"  # set on the one row that stands for a file that could not be read at all
ROWS_PER_BATCH = 256
_SPARK_TYPES = {pa.string(): "string", pa.float64(): "double", pa.int64(): "long", pa.int32(): "int"}


class BadInputFilesError(RuntimeError):
    """Input files that could not be read at all; --allow-bad-files goes on without them."""


def spark_ddl(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {_SPARK_TYPES[f.type]}" for f in schema)


class _PerFile:
    """mapInArrow function: each input row carries a file index; yields that file's rows in batches."""

    def __init__(self, files: list[str], rows_of_file: Callable[[str], Iterator[dict]], schema: pa.Schema):
        self.files = files
        self.rows_of_file = rows_of_file
        self.schema = schema

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column("id").to_pylist():
                rows = []
                for row in self.rows_of_file(self.files[index]):
                    rows.append(row)
                    if len(rows) == ROWS_PER_BATCH:
                        yield pa.RecordBatch.from_pylist(rows, schema=self.schema)
                        rows = []
                if rows:
                    yield pa.RecordBatch.from_pylist(rows, schema=self.schema)


def rows_from_files(
    spark: SparkSession, files: list[str], rows_of_file: Callable[[str], Iterator[dict]], schema: pa.Schema
) -> DataFrame:
    """A frame of every file's rows, one Spark task per file. `rows_of_file(path)` must be picklable
    and yield dicts with the schema's fields; for a file it cannot open it yields one {BAD_FILE: why}."""
    tasks = spark.range(0, len(files), 1, numPartitions=max(len(files), 1))
    return tasks.mapInArrow(_PerFile(files, rows_of_file, schema), spark_ddl(schema))


def bad_file_row(path: str, error: BaseException | str) -> dict:
    return {BAD_FILE: f"{path}: {error}"}


def count_by(df: DataFrame, *columns: str) -> list[tuple]:
    """(values..., rows) for each combination of the columns' values, sorted: small, for stats.json.
    One shuffle partition: the result has a handful of rows, not one per input row."""
    spark = df.sparkSession
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    try:
        rows = df.groupBy(*columns).count().collect()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
    return sorted((tuple(r[c] for c in columns) + (r["count"],) for r in rows), key=lambda t: tuple(map(str, t)))


def histogram(pairs: list[tuple[str | None, int]]) -> dict[str, int]:
    """{value: rows}, most frequent first (ties by value); None shown as "unknown"."""
    merged: dict[str, int] = {}
    for value, n in pairs:
        key = "unknown" if value is None else str(value)
        merged[key] = merged.get(key, 0) + n
    return dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))


def write_stage(
    df: DataFrame,
    out: StageOutput,
    config: OutputConfig,
    reasons: list[str],
    keep_dropped: bool,
    group_by: tuple[str, ...] = (),
    summarize: Callable[[list[tuple], DataFrame], dict] | None = None,
    allow_bad_files: bool = False,
) -> StageStats:
    """Persist the stage frame, count it once by `group_by` columns (the first pass, which runs the
    stage's work), refuse or name bad files, let `summarize(counts, frame)` fill stats.json's `extra`,
    write the output. Columns starting with "_" are the stage's own bookkeeping and are not written."""
    cached = df = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        has_bad = BAD_FILE in df.columns
        counts = count_by(df, *((BAD_FILE,) if has_bad else ()), *group_by)
        extra: dict = {}
        if has_bad:
            bad = sorted(c[0] for c in counts if c[0] is not None)
            if bad and not allow_bad_files:
                listed = "\n  ".join(bad)
                raise BadInputFilesError(
                    f"{len(bad)} input file(s) cannot be read:\n  {listed}\n--allow-bad-files goes on without them"
                )
            extra["bad_files"] = bad
            counts = [c[1:] for c in counts if c[0] is None]
            df = df.filter(F.col(BAD_FILE).isNull())
        in_rows = sum(c[-1] for c in counts)
        if summarize is not None:
            extra.update(summarize(counts, df))
        rows = df.drop(*[c for c in df.columns if c.startswith("_")])
        return out.write(rows, config, reasons, keep_dropped=keep_dropped, expected_in_rows=in_rows, extra=extra)
    finally:
        cached.unpersist()
