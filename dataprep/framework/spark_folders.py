"""Stage folders read into and written from Spark (the folder protocol: blending/stage_folder.py).

`read_input_folders` gives the documents of one or several finished folders as one frame. `write_folder`
takes one frame holding every input row of a stage (the document columns, the stage's columns,
`drop_reason` (null when kept), `in_bytes`, optionally `in_rows`), buckets kept rows into a fixed number
of Parquet files by a stable hash of doc_id, sorts each file by doc_id, writes the dropped rows' index (and
with keep_dropped the dropped rows), counts everything into stats.json, checks the accounting invariant
and writes the stage's extra files and _SUCCESS last: locally in a temporary folder renamed into place, on
object storage in an attempt folder that _SUCCESS lists (blending/stage_folder.py, `publish`). A
file's bytes depend only on its rows, never on the Spark master or the partitioning: row groups have a
fixed number of rows. The layers: write_folder -> _PartitionWriter (executors) -> _FixedRowGroups.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from blending.spark_parts import read_parts
from blending.stage_folder import (
    DROPPED_DIR,
    DROPPED_INDEX_COLUMNS,
    DROPPED_INDEX_DIR,
    STATS,
    InputError,
    folder_record,
    is_listed,
    list_parts,
    part_name,
    publish,
    read_stats,
    read_success,
    resolve,
    working_folder,
    write_text,
)
from blending.stage_stats import AccountingError, StageStats
from dataprep.config import OutputConfig
from dataprep.framework.stage import Extras
from dataprep.schema import DROP_REASON, IN_BYTES, IN_ROWS

_BUCKET = "_bucket"
_IS_DROPPED = "_is_dropped"
_COUNT_SCHEMA = pa.schema([("bucket", pa.int32()), ("dropped", pa.bool_()), ("reason", pa.string()),
                           ("rows", pa.int64()), ("in_rows", pa.int64()), ("in_bytes", pa.int64()),
                           ("text_bytes", pa.int64())])
_COUNT_DDL = "bucket int, dropped boolean, reason string, rows long, in_rows long, in_bytes long, text_bytes long"


@dataclass
class InputFolders:
    documents: DataFrame  # every folder's rows, unioned by column name
    records: list[dict]  # folder_record of each, in the order given: what _SUCCESS records of them
    upstream: list[dict]  # their _SUCCESS records, in the order given
    rows: int | None  # rows in their part files, from their stats.json (None when one lacks it)


def read_input_folders(spark: SparkSession, folders: list[str]) -> InputFolders:
    """One or several finished stage folders as one frame; a doc_id in two input rows is refused."""
    if not folders:
        raise InputError("no input folder")
    frames, records, upstream, rows = [], [], [], 0
    for folder in folders:
        frames.append(read_parts(spark, list_parts(folder)))
        records.append(folder_record(folder))
        upstream.append(json.loads(read_success(folder)))
        stats = read_stats(folder)
        rows = rows + stats["out"]["rows"] if rows is not None and stats is not None else None
    documents = frames[0]
    for df in frames[1:]:
        documents = documents.unionByName(df, allowMissingColumns=True)
    if len(frames) > 1:
        twice = documents.groupBy("doc_id").count().where("count > 1").select("doc_id").limit(3).collect()
        if twice:
            ids = ", ".join(r.doc_id for r in twice)
            raise InputError(f"the same doc_id in two input rows ({ids}): {', '.join(folders)}")
    return InputFolders(documents, records, upstream, rows)


@dataclass
class FolderSpec:
    """Where and how a stage's folder is written."""

    out: str
    stage: str
    reasons: list[str]  # the declared drop reasons, in order
    success: dict  # the _SUCCESS record
    output: OutputConfig
    keep_dropped: bool = False
    work_dir: str | None = None  # a local OUT's temporary folder (emptied first); default a new OUT.tmp-*


def write_folder(
    frame: DataFrame,
    spec: FolderSpec,
    expected_in_rows: Callable[[], int | None],
    extras: Callable[[StageStats], Extras],
) -> StageStats:
    """Write the stage's rows (computing them), stats.json, its extras and _SUCCESS atomically; the stats.
    `expected_in_rows()` and `extras(stats)` are called once the rows are written: what tasks tallied
    while computing them (Spark accumulators) is known only then."""
    config = spec.output
    if IN_ROWS not in frame.columns:
        frame = frame.withColumn(IN_ROWS, F.lit(1).cast("long"))
    bucket = F.pmod(F.conv(F.substring("doc_id", 1, 8), 16, 10).cast("long"), F.lit(config.num_buckets))
    # No more write tasks than cores: a task writes whole buckets (all of a bucket's rows hash to one
    # partition), and a Python task costs ~0.1 s to start, which dominates small local runs.
    tasks = min(config.num_buckets, frame.sparkSession.sparkContext.defaultParallelism)
    frame = frame.withColumn(_BUCKET, bucket.cast("int")).withColumn(_IS_DROPPED, F.col(DROP_REASON).isNotNull())
    # One write task takes every bucket: gathering the rows needs no shuffle (a pass of serialising,
    # compressing and reading back every row on the one core there is).
    frame = frame.coalesce(1) if tasks == 1 else frame.repartition(tasks, _BUCKET)
    frame = frame.sortWithinPartitions(_BUCKET, _IS_DROPPED, "doc_id")
    schema = to_arrow_schema(frame.schema, timezone="UTC")
    bookkeeping = {_BUCKET, _IS_DROPPED, IN_BYTES, IN_ROWS}
    schemas = {
        "kept": pa.schema([f for f in schema if f.name not in bookkeeping | {DROP_REASON}]),
        "dropped": pa.schema([f for f in schema if f.name not in bookkeeping]),
        "index": pa.schema([schema.field(name) for name in DROPPED_INDEX_COLUMNS]),
    }

    tmp = working_folder(spec.out, spec.work_dir)
    fs, tmp_root = resolve(tmp)
    if tmp == spec.work_dir and fs.get_file_info(tmp_root).type != pafs.FileType.NotFound:
        fs.delete_dir(tmp_root)  # what a killed run had begun to write
    if not is_listed(tmp):  # object stores have no folders (pyarrow would leave empty marker objects)
        fs.create_dir(f"{tmp_root}/{DROPPED_INDEX_DIR}", recursive=True)
        if spec.keep_dropped:
            fs.create_dir(f"{tmp_root}/{DROPPED_DIR}", recursive=True)
    try:
        writer = _PartitionWriter(tmp, schemas, config, spec.keep_dropped)
        counts = pa.Table.from_batches(frame.mapInArrow(writer, _COUNT_DDL).toArrow().to_batches(),
                                       schema=_COUNT_SCHEMA).to_pylist()
        _write_missing_buckets(fs, tmp_root, {(c["bucket"], c["dropped"]) for c in counts}, schemas, spec)
        stats = _stats_from_counts(spec.stage, counts, spec.reasons)
        added = extras(stats)
        stats.extra = added.stats
        expected = expected_in_rows()
        if expected is not None and stats.in_rows != expected:
            raise AccountingError(f"{spec.stage}: read {expected} rows but accounted for {stats.in_rows}")
        stats.check()
        for name, data in added.files.items():
            with fs.open_output_stream(f"{tmp_root}/{name}") as f:
                f.write(data)
        write_text(f"{tmp}/{STATS}", stats.to_json())
    except BaseException:
        fs.delete_dir(tmp_root)  # a failed job leaves nothing behind
        raise
    publish(tmp, spec.out, spec.success)  # _SUCCESS last
    return stats


class _PartitionWriter:
    """Runs on executors: writes the (bucket, kept|dropped) runs of a sorted partition to their files and
    returns their row counts by reason."""

    def __init__(self, tmp_uri: str, schemas: dict[str, pa.Schema], config: OutputConfig, keep_dropped: bool):
        self.tmp_uri, self.schemas, self.config, self.keep_dropped = tmp_uri, schemas, config, keep_dropped

    def __call__(self, batches):
        fs, root = resolve(self.tmp_uri)
        key, files, counts = None, [], {}
        for batch in batches:
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch])
            for run_key, run in _runs(table):
                if run_key != key:
                    if key is not None:
                        yield self._close(key, files, counts)
                    key, files, counts = run_key, self._open(fs, root, run_key), {}
                _count(run, counts)
                for f in files:
                    f.add(run)
        if key is not None:
            yield self._close(key, files, counts)

    def _open(self, fs, root: str, key: tuple[int, bool]) -> list[_FixedRowGroups]:
        bucket, dropped = key
        name = part_name(bucket)
        if not dropped:
            return [_FixedRowGroups(fs, f"{root}/{name}", self.schemas["kept"], self.config)]
        files = [_FixedRowGroups(fs, f"{root}/{DROPPED_INDEX_DIR}/{name}", self.schemas["index"], self.config)]
        if self.keep_dropped:
            files.append(_FixedRowGroups(fs, f"{root}/{DROPPED_DIR}/{name}", self.schemas["dropped"], self.config))
        return files

    @staticmethod
    def _close(key: tuple[int, bool], files: list[_FixedRowGroups], counts: dict) -> pa.RecordBatch:
        for f in files:
            f.close()
        bucket, dropped = key
        rows = [{"bucket": bucket, "dropped": dropped, "reason": reason, "rows": c[0], "in_rows": c[1],
                 "in_bytes": c[2], "text_bytes": c[3]} for reason, c in counts.items()]
        return pa.RecordBatch.from_pylist(rows, schema=_COUNT_SCHEMA)


class _FixedRowGroups:
    """One Parquet file written in row groups of exactly rows_per_row_group rows (the last may be short)."""

    def __init__(self, fs, path: str, schema: pa.Schema, config: OutputConfig):
        self.schema = schema
        self.group_rows = config.rows_per_row_group
        self.writer = pq.ParquetWriter(fs.open_output_stream(path), schema, compression=config.compression)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def add(self, run: pa.Table) -> None:
        self.pending.append(run.select(self.schema.names).cast(self.schema))
        self.pending_rows += run.num_rows
        while self.pending_rows >= self.group_rows:
            self._flush(self.group_rows)

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.pending)
        self.writer.write_table(table.slice(0, n), row_group_size=n)
        rest = table.slice(n)
        self.pending, self.pending_rows = [rest], rest.num_rows

    def close(self) -> None:
        if self.pending_rows:
            self._flush(self.pending_rows)
        self.writer.close()


def _runs(table: pa.Table):
    """Split a sorted table into maximal runs of equal (bucket, is_dropped)."""
    buckets = table.column(_BUCKET).to_pylist()
    dropped = table.column(_IS_DROPPED).to_pylist()
    start = 0
    for i in range(1, len(buckets) + 1):
        if i == len(buckets) or buckets[i] != buckets[start] or dropped[i] != dropped[start]:
            yield (buckets[start], dropped[start]), table.slice(start, i - start)
            start = i


def _count(run: pa.Table, counts: dict) -> None:
    """Rows, input rows, input bytes and text bytes of a run, by drop reason."""
    text_bytes = pc.binary_length(run.column("text")).fill_null(0).to_pylist()
    columns = (run.column(DROP_REASON).to_pylist(), run.column(IN_ROWS).to_pylist(),
               run.column(IN_BYTES).fill_null(0).to_pylist(), text_bytes)
    for reason, r, b, t in zip(*columns):
        c = counts.setdefault(reason, [0, 0, 0, 0])
        c[0] += 1
        c[1] += r
        c[2] += b
        c[3] += t


def _write_missing_buckets(fs, root: str, written: set, schemas: dict[str, pa.Schema], spec: FolderSpec) -> None:
    """Every bucket has its files, empty when no row hashed to it."""
    for b in range(spec.output.num_buckets):
        if (b, False) not in written:
            _write_empty(fs, f"{root}/{part_name(b)}", schemas["kept"], spec.output)
        if (b, True) not in written:
            _write_empty(fs, f"{root}/{DROPPED_INDEX_DIR}/{part_name(b)}", schemas["index"], spec.output)
            if spec.keep_dropped:
                _write_empty(fs, f"{root}/{DROPPED_DIR}/{part_name(b)}", schemas["dropped"], spec.output)


def _write_empty(fs, path: str, schema: pa.Schema, config: OutputConfig) -> None:
    with pq.ParquetWriter(fs.open_output_stream(path), schema, compression=config.compression) as w:
        w.write_table(schema.empty_table())


def _stats_from_counts(stage: str, counts: list[dict], reasons: list[str]) -> StageStats:
    stats = StageStats(stage=stage, dropped={r: 0 for r in reasons})
    for c in counts:
        stats.in_rows += c["in_rows"]
        stats.in_bytes += c["in_bytes"]
        if c["dropped"]:
            if c["reason"] not in stats.dropped:
                raise AccountingError(f"{stage}: undeclared drop reason {c['reason']!r}")
            stats.dropped[c["reason"]] += c["in_rows"]
        else:
            stats.kept_rows += c["in_rows"]
            stats.kept_bytes += c["in_bytes"]
            stats.out_rows += c["rows"]
            stats.out_bytes += c["text_bytes"]
    return stats
