"""The document index beside each shard: which document is which, for lineage.

`PREFIX.docs.parquet` holds one row per document of `PREFIX.bin`, in the shard's order (row i is
document i): `doc_id`, `origin` (WARC file@offset, or input file:row) and `url` (null for sources
without one). The manifest lists it with its size and sha256 beside the `.bin` and `.idx`; Megatron's
readers open only `.bin`/`.idx` and never see it. Written with fixed options, so the same documents
give the same bytes. Imports neither pyspark nor dataprep.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from blending.indexed import WrittenFile

DOCS_SUFFIX = ".docs.parquet"
DOC_INDEX_SCHEMA = pa.schema([("doc_id", pa.string()), ("origin", pa.string()), ("url", pa.string())])


def docs_path(prefix: str | Path) -> Path:
    return Path(str(prefix) + DOCS_SUFFIX)


def write_document_index(prefix: str | Path, doc_ids: Sequence, origins: Sequence, urls: Sequence) -> WrittenFile:
    """Write PREFIX.docs.parquet for the shard's documents in order; its size and sha256."""
    table = pa.table([pa.array(doc_ids, pa.string()), pa.array(origins, pa.string()), pa.array(urls, pa.string())],
                     schema=DOC_INDEX_SCHEMA)
    path = docs_path(prefix)
    pq.write_table(table, path, compression="zstd", row_group_size=1 << 16)
    data = path.read_bytes()
    return WrittenFile(len(data), hashlib.sha256(data).hexdigest())


def read_document_index(prefix: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    return pq.read_table(docs_path(prefix), columns=list(columns) if columns else None)


def document_count(prefix: str | Path) -> int:
    """Rows of a document index, from its footer alone."""
    return pq.ParquetFile(docs_path(prefix)).metadata.num_rows


def find_documents(prefix: str | Path, column: str, value: str) -> list[int]:
    """Indices of the shard's documents whose `column` (doc_id, origin, url) equals `value`."""
    values = read_document_index(prefix, [column])[column].to_pylist()
    return [i for i, v in enumerate(values) if v == value]
