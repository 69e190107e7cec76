"""Writing and reading stage folders with Spark (the folder itself: dataprep/stage_folder.py).

A stage hands `StageOutput.write` one DataFrame holding every input row: the document columns, the
stage's own columns, `drop_reason` (null when kept), `in_bytes` and optionally `in_rows`. The writer
buckets kept rows into a fixed number of Parquet files by a stable hash of doc_id, sorts each file by
doc_id, writes the dropped rows' index (and with keep_dropped the dropped rows), counts everything into
stats.json, checks the accounting invariant, writes _SUCCESS last, all inside OUT.tmp-*, and renames
that folder into place. A file's bytes depend only on its rows, never on the Spark master or the
partitioning: row groups have a fixed number of rows.
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

from dataprep import __version__
from dataprep.config import OutputConfig
from dataprep.schema import DROP_REASON, IN_BYTES, IN_ROWS
from dataprep.stage_folder import (
    DROPPED_DIR,
    DROPPED_INDEX_COLUMNS,
    DROPPED_INDEX_DIR,
    STATS,
    SUCCESS,
    InputError,
    folder_record,
    list_parts,
    part_name,
    read_success,
    resolve,
    reusable,
    success_record,
    swap_into_place,
    temporary_folder,
    write_text,
)
from dataprep.stats import AccountingError, StageStats

_BUCKET = "_bucket"
_IS_DROPPED = "_is_dropped"
_COUNT_DDL = "bucket int, dropped boolean, reason string, rows long, in_rows long, in_bytes long, text_bytes long"
_COUNT_SCHEMA = pa.schema(
    [
        ("bucket", pa.int32()),
        ("dropped", pa.bool_()),
        ("reason", pa.string()),
        ("rows", pa.int64()),
        ("in_rows", pa.int64()),
        ("in_bytes", pa.int64()),
        ("text_bytes", pa.int64()),
    ]
)


@dataclass
class InputFolders:
    documents: DataFrame  # every folder's rows, unioned by column name
    records: list[dict]  # folder_record of each, in the order given: what _SUCCESS records of them
    upstream: list[dict]  # their _SUCCESS records, in the order given
    rows: int | None  # rows in their part files, from their stats.json (None when one lacks it)


def read_stage_outputs(spark: SparkSession, folders: list[str]) -> InputFolders:
    """One or several finished stage folders as one frame; a doc_id in two input rows is refused."""
    if not folders:
        raise InputError("no input folder")
    frames, records, upstream, rows = [], [], [], 0
    for folder in folders:
        frames.append(spark.read.parquet(*list_parts(folder)))
        records.append(folder_record(folder))
        upstream.append(json.loads(read_success(folder)))
        fs, root = resolve(folder)
        stats = f"{root}/{STATS}"
        if rows is not None and fs.get_file_info(stats).type.name == "File":
            with fs.open_input_stream(stats) as f:
                rows += json.loads(f.read())["out"]["rows"]
        else:
            rows = None
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
class StageOutput:
    out: str
    stage: str
    inputs: list[dict]
    config_hash: str
    overwrite: bool = False  # rewrite whatever is there
    replace_changed: bool = False  # rewrite an output made from other inputs or config (a pipeline's own folders)
    keep_dropped: bool = False  # the dropped rows are wanted too: an output written without them is written again

    def success_record(self) -> dict:
        return success_record(self.stage, __version__, self.inputs, self.config_hash)

    def reusable(self) -> bool:
        """True when OUT is complete for the same stage, inputs and config (and holds the dropped rows when
        they are wanted); raises when it is in the way."""
        if not reusable(self.out, self.success_record(), self.overwrite, self.replace_changed):
            return False
        fs, root = resolve(self.out)
        return not self.keep_dropped or fs.get_file_info(f"{root}/{DROPPED_DIR}").type != pafs.FileType.NotFound

    def load_stats(self) -> StageStats:
        fs, root = resolve(self.out)
        with fs.open_input_stream(f"{root}/{STATS}") as f:
            return StageStats.from_dict(json.loads(f.read()))

    def write(
        self,
        df: DataFrame,
        config: OutputConfig,
        reasons: list[str],
        keep_dropped: bool = False,
        sort_columns: tuple[str, ...] = ("doc_id",),
        expected_in_rows: int | Callable[[], int] | None = None,
        extra: dict | Callable[[StageStats], dict] | None = None,
        write_files: Callable[[str], None] | None = None,
        work_dir: str | None = None,
    ) -> StageStats:
        """Write the stage's rows, stats.json and _SUCCESS atomically; return the stats.

        `expected_in_rows` and `extra` may be callables, called once the rows are written: figures a
        stage gathers while its rows are computed (Spark accumulators) are known only then; `extra`
        gets the counted stats. `write_files(folder)` adds files to the temporary folder, which is
        `work_dir` when given (emptied first), else a new OUT.tmp-*."""
        if IN_ROWS not in df.columns:
            df = df.withColumn(IN_ROWS, F.lit(1).cast("long"))
        bucket = F.pmod(F.conv(F.substring("doc_id", 1, 8), 16, 10).cast("long"), F.lit(config.num_buckets))
        # No more write tasks than cores: a task writes whole buckets (all of a bucket's rows hash to
        # one partition), and a Python task costs ~0.1 s to start, which dominates small local runs.
        tasks = min(config.num_buckets, df.sparkSession.sparkContext.defaultParallelism)
        df = (
            df.withColumn(_BUCKET, bucket.cast("int"))
            .withColumn(_IS_DROPPED, F.col(DROP_REASON).isNotNull())
            .repartition(tasks, _BUCKET)
            .sortWithinPartitions(_BUCKET, _IS_DROPPED, *sort_columns)
        )
        schema = to_arrow_schema(df.schema, timezone="UTC")
        bookkeeping = {_BUCKET, _IS_DROPPED, IN_BYTES, IN_ROWS}
        kept_schema = pa.schema([f for f in schema if f.name not in bookkeeping | {DROP_REASON}])
        dropped_schema = pa.schema([f for f in schema if f.name not in bookkeeping])
        index_schema = pa.schema([schema.field(name) for name in DROPPED_INDEX_COLUMNS])

        tmp = work_dir or temporary_folder(self.out)
        fs, tmp_root = resolve(tmp)
        if work_dir and fs.get_file_info(tmp_root).type != pafs.FileType.NotFound:
            fs.delete_dir(tmp_root)  # what a killed run had begun to write
        fs.create_dir(f"{tmp_root}/{DROPPED_INDEX_DIR}", recursive=True)
        if keep_dropped:
            fs.create_dir(f"{tmp_root}/{DROPPED_DIR}", recursive=True)
        try:
            writer = _PartitionWriter(tmp, kept_schema, dropped_schema, index_schema, config, keep_dropped)
            counts = pa.Table.from_batches(
                df.mapInArrow(writer, _COUNT_DDL).toArrow().to_batches(), schema=_COUNT_SCHEMA
            ).to_pylist()
            written = {(c["bucket"], c["dropped"]) for c in counts}
            for b in range(config.num_buckets):
                if (b, False) not in written:
                    _write_empty(fs, f"{tmp_root}/{part_name(b)}", kept_schema, config)
                if (b, True) not in written:
                    _write_empty(fs, f"{tmp_root}/{DROPPED_INDEX_DIR}/{part_name(b)}", index_schema, config)
                    if keep_dropped:
                        _write_empty(fs, f"{tmp_root}/{DROPPED_DIR}/{part_name(b)}", dropped_schema, config)
            stats = _stats_from_counts(self.stage, counts, reasons)
            stats.extra = (extra(stats) if callable(extra) else extra) or {}
            if callable(expected_in_rows):
                expected_in_rows = expected_in_rows()
            if expected_in_rows is not None and stats.in_rows != expected_in_rows:
                raise AccountingError(f"{self.stage}: read {expected_in_rows} rows but accounted for {stats.in_rows}")
            stats.check()
            if write_files is not None:
                write_files(tmp)
            write_text(f"{tmp}/{STATS}", stats.to_json())
            write_text(f"{tmp}/{SUCCESS}", json.dumps(self.success_record(), indent=2) + "\n")
        except BaseException:
            fs.delete_dir(tmp_root)  # a failed job leaves nothing behind
            raise
        swap_into_place(tmp, self.out)
        return stats


class _PartitionWriter:
    """Runs on executors: writes the (bucket, kept|dropped) runs of a sorted partition to their files."""

    def __init__(self, tmp_uri, kept_schema, dropped_schema, index_schema, config: OutputConfig, keep_dropped: bool):
        self.tmp_uri = tmp_uri
        self.kept_schema = kept_schema
        self.dropped_schema = dropped_schema
        self.index_schema = index_schema
        self.config = config
        self.keep_dropped = keep_dropped

    def __call__(self, batches):
        fs, root = resolve(self.tmp_uri)
        sink = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch])
            for key, run in _runs(table):
                if sink is None or sink.key != key:
                    if sink is not None:
                        yield sink.close()
                    sink = _RunSink(key, fs, root, self)
                sink.add(run)
        if sink is not None:
            yield sink.close()


class _RunSink:
    """The files of one (bucket, kept|dropped) run: the part file, or the dropped index and the dropped
    rows; counts its rows by reason."""

    def __init__(self, key, fs, root, owner: _PartitionWriter):
        self.key = key
        bucket, dropped = key
        name = part_name(bucket)
        if not dropped:
            self.files = [_RowGroupWriter(fs, f"{root}/{name}", owner.kept_schema, owner.config)]
        else:
            self.files = [_RowGroupWriter(fs, f"{root}/{DROPPED_INDEX_DIR}/{name}", owner.index_schema, owner.config)]
            if owner.keep_dropped:
                self.files.append(_RowGroupWriter(fs, f"{root}/{DROPPED_DIR}/{name}", owner.dropped_schema, owner.config))
        self.counts: dict[str | None, list[int]] = {}

    def add(self, run: pa.Table) -> None:
        reasons = run.column(DROP_REASON).to_pylist()
        in_rows = run.column(IN_ROWS).to_pylist()
        in_bytes = run.column(IN_BYTES).fill_null(0).to_pylist()
        text_bytes = pc.binary_length(run.column("text")).fill_null(0).to_pylist()
        for reason, r, b, t in zip(reasons, in_rows, in_bytes, text_bytes):
            c = self.counts.setdefault(reason, [0, 0, 0, 0])
            c[0] += 1
            c[1] += r
            c[2] += b
            c[3] += t
        for f in self.files:
            f.add(run)

    def close(self) -> pa.RecordBatch:
        for f in self.files:
            f.close()
        bucket, dropped = self.key
        rows = [
            {"bucket": bucket, "dropped": dropped, "reason": reason, "rows": c[0], "in_rows": c[1],
             "in_bytes": c[2], "text_bytes": c[3]}
            for reason, c in self.counts.items()
        ]
        return pa.RecordBatch.from_pylist(rows, schema=_COUNT_SCHEMA)


class _RowGroupWriter:
    """One Parquet file: buffers rows and writes row groups of exactly rows_per_row_group rows."""

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


def _write_empty(fs, path: str, schema: pa.Schema, config: OutputConfig) -> None:
    with pq.ParquetWriter(fs.open_output_stream(path), schema, compression=config.compression) as w:
        w.write_table(schema.empty_table())

