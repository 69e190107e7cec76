"""What a bare loop writes, so that it pays for the same output as the stage: the kept rows in one Parquet
file per bucket (the stage's stable hash of doc_id), sorted by doc_id, and the dropped rows' index."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from blending.stage_folder import DROPPED_INDEX_COLUMNS, part_name
from dataprep.config import OutputConfig
from dataprep.schema import DROP_REASON

BOOKKEEPING = ("in_bytes", "_detail", "_charset_via", "_bucket")


def write_bucketed(table: pa.Table, out: Path, config: OutputConfig) -> None:
    """`table`'s rows (with a drop_reason column) as a stage folder's part files and dropped index."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "dropped_index").mkdir(exist_ok=True)
    prefixes = pc.utf8_slice_codeunits(table.column("doc_id"), 0, 8).to_pylist()
    buckets = pa.array([int(p, 16) % config.num_buckets for p in prefixes], pa.int32())
    table = table.append_column("_bucket", buckets).sort_by([("_bucket", "ascending"), ("doc_id", "ascending")])
    dropped = pc.is_valid(table.column(DROP_REASON))
    kept = table.filter(pc.invert(dropped))
    kept = kept.select([n for n in kept.column_names if n not in (*BOOKKEEPING, DROP_REASON)] + ["_bucket"])
    index = table.filter(dropped).select([*DROPPED_INDEX_COLUMNS, "_bucket"])
    for rows, folder in ((kept, out), (index, out / "dropped_index")):
        for b in range(config.num_buckets):
            part = rows.filter(pc.equal(rows.column("_bucket"), b)).drop_columns(["_bucket"])
            pq.write_table(part, folder / part_name(b), compression=config.compression,
                           row_group_size=config.rows_per_row_group)
