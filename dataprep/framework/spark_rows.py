"""The rows of each stage shape as a Spark DataFrame, tallied on the way (the folders: spark_folders.py).

Per-row logic lives in the stages' plain functions; this module only moves rows. A task tallies its unit
of work (an input file, or a partition of a stage folder) and sends the Tally to the driver through a
Spark accumulator keyed by unit: a task that runs twice (a retry, a recomputation) sends the same tally
under the same key, so nothing is counted twice. The rows are computed once, inside the write job, and
never cached. A file that cannot be read at all fails its task, and so the job, unless bad files are
allowed; then it is named in stats.json.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import AccumulatorParam, TaskContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from dataprep.framework.finished_files import FinishedFiles
from dataprep.framework.stage import DocumentFilter, SourceStage, Stage, WholeDatasetStage
from dataprep.framework.tally import Tally
from dataprep.schema import DROP_REASON, IN_BYTES

BAD_FILE = "_bad_file"  # the key of the one row a file reader yields for a file it cannot read
FILE_COUNTS = "_file_counts"  # the key of a row that only adds to the file's tally: {counter: amount}
ROWS_PER_BATCH = 256
_SPARK_TYPES = {pa.string(): "string", pa.float64(): "double", pa.int64(): "long", pa.int32(): "int"}


class BadInputFilesError(RuntimeError):
    """An input file that could not be read at all; --allow-bad-files goes on without it."""


class _MergeByUnit(AccumulatorParam):
    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, a: dict, b: dict) -> dict:  # noqa: N802 - Spark's name
        a.update(b)
        return a


class Tallies:
    """Per-unit tallies gathered by a Spark accumulator (see the module's docstring)."""

    def __init__(self, spark: SparkSession):
        self._accumulator = spark.sparkContext.accumulator({}, _MergeByUnit())

    def record(self, unit, tally: Tally) -> None:
        """In a task: this unit's tally (replacing one sent before for the same unit)."""
        self._accumulator.add({unit: tally})

    def merged(self) -> Tally:
        """On the driver, after the job: all units together, bad files sorted."""
        total = Tally()
        for _unit, tally in sorted(self._accumulator.value.items(), key=lambda kv: str(kv[0])):
            total.merge(tally)
        total.bad_files.sort()
        return total


def partition_unit() -> int:
    """The unit of work of a task over a stage folder's rows: its partition (the same on a retry)."""
    return TaskContext.get().partitionId()


def bad_file_row(path: str, error: BaseException | str) -> dict:
    return {BAD_FILE: f"{path}: {error}"}


def file_counts_row(**counts: int) -> dict:
    """A row that is no input row: what reading the file counted (input_retries), added to its tally."""
    return {FILE_COUNTS: counts}


def stage_rows(stage: Stage, documents: DataFrame | None, store: FinishedFiles | None = None) -> tuple[DataFrame, dict]:
    """(every input row of the stage as one frame, the figures a whole-dataset stage returned)."""
    if isinstance(stage, SourceStage):
        return source_rows(stage, store), {}
    if isinstance(stage, DocumentFilter):
        return filter_rows(stage, documents), {}
    if isinstance(stage, WholeDatasetStage):
        documents = documents.withColumn(IN_BYTES, F.coalesce(F.octet_length("text"), F.lit(0)).cast("long"))
        out = stage.transform(documents)
        missing = {DROP_REASON, IN_BYTES, "doc_id", "text"} - set(out.rows.columns)
        if missing:
            raise ValueError(f"{stage.name}: transform's result lacks the columns {sorted(missing)}")
        return out.rows, out.figures
    raise TypeError(f"{type(stage).__name__} is none of the stage shapes")


# -- source stages: one task per input file ---------------------------------------------------------------


def source_rows(stage: SourceStage, store: FinishedFiles | None = None) -> DataFrame:
    """Every file's rows, one Spark task per file; with `store`, finished files' rows come from it
    (per-file resume, finished_files.py)."""
    spark, files = stage.ctx.spark, stage.files
    schema = stage.row_schema()
    ddl = ", ".join(f"{f.name} {_SPARK_TYPES[f.type]}" for f in schema)
    tasks = spark.range(0, len(files), 1, numPartitions=max(len(files), 1))
    return tasks.mapInArrow(_PerFile(stage, schema, store), ddl)


class _PerFile:
    """mapInArrow function: each input row carries a file index; yields that file's rows in batches and
    records the file's tally. A file found in the store is not read: its stored rows and tally are; a
    file read is stored as it goes."""

    def __init__(self, stage: SourceStage, schema: pa.Schema, store: FinishedFiles | None):
        self.stage, self.schema, self.store = stage, schema, store

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column("id").to_pylist():
                yield from self._file(index)

    def _file(self, index: int) -> Iterator[pa.RecordBatch]:
        stage = self.stage
        path = stage.files[index]
        stored = self.store.load(path) if self.store else None
        if stored is not None:
            batches, tally = stored
            yield from batches
            stage.ctx.tallies.record(index, tally)
            return
        sink = self.store.writer(path, self.schema) if self.store else None
        tally = Tally()
        rows = []
        for row in stage.rows_of_file(path):
            if FILE_COUNTS in row:
                for counter, amount in row[FILE_COUNTS].items():
                    tally.count(counter, None, amount)
                continue
            if BAD_FILE in row:
                if not stage.opts.get("allow_bad_files", False):
                    raise BadInputFilesError(row[BAD_FILE])
                tally.bad_files.append(row[BAD_FILE])
                continue
            tally.rows += 1
            stage.tally(row, tally)
            rows.append(row)
            if len(rows) == ROWS_PER_BATCH:
                yield self._batch(rows, sink)
                rows = []
        if rows:
            yield self._batch(rows, sink)
        if sink is not None:
            sink.commit(tally)
        stage.ctx.tallies.record(index, tally)

    def _batch(self, rows: list[dict], sink) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_pylist(rows, schema=self.schema)
        if sink is not None:
            sink.write(batch)
        return batch


# -- document filters: per Arrow batch ----------------------------------------------------------------------


def filter_rows(stage: DocumentFilter, documents: DataFrame) -> DataFrame:
    added = {f.name for f in stage.columns} | {DROP_REASON, IN_BYTES}
    fields = [f for f in to_arrow_schema(documents.schema, timezone="UTC") if f.name not in added]
    schema = pa.schema(fields + list(stage.columns)
                       + [pa.field(DROP_REASON, pa.string()), pa.field(IN_BYTES, pa.int64())])
    documents = documents.select(*[f.name for f in fields])
    return documents.mapInArrow(_FilterTask(stage, schema), from_arrow_schema(schema))


class _FilterTask:
    """mapInArrow function of a DocumentFilter: transform, score, keep, per batch."""

    def __init__(self, stage: DocumentFilter, schema: pa.Schema):
        self.stage, self.schema = stage, schema

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stage = self.stage
        stage.setup()
        tally = Tally()
        for batch in batches:
            in_bytes = pc.binary_length(batch.column("text")).fill_null(0).cast(pa.int64())
            batch = stage.transform(batch)
            scores = {name: _pylist(values) for name, values in stage.score(batch).items()}
            rows = batch.to_pylist()
            reasons = []
            for i, row in enumerate(rows):
                for name, values in scores.items():
                    row[name] = values[i]
                row[DROP_REASON] = reason = stage.keep(row)
                reasons.append(reason)
                tally.rows += 1
                stage.tally(row, tally)
            columns = {name: batch.column(name) for name in batch.schema.names}
            for f in stage.columns:
                columns[f.name] = pa.array(scores[f.name], f.type)
            columns[DROP_REASON] = pa.array(reasons, pa.string())
            columns[IN_BYTES] = in_bytes
            yield pa.RecordBatch.from_arrays([columns[f.name] for f in self.schema], schema=self.schema)
        stage.ctx.tallies.record(partition_unit(), tally)


def _pylist(values) -> list:
    if hasattr(values, "to_pylist"):
        return values.to_pylist()
    if hasattr(values, "tolist"):
        return values.tolist()
    return list(values)
