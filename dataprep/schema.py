"""The document row every stage reads and writes, and its stable id (docs/contracts.md, "The document row").

doc_id, source, url, origin, lang, lang_score, text come first, in that order; stages append their own
columns and never rename or drop one. doc_id is the first 16 hex digits of sha1(source + NUL + origin),
so it is the same on every machine and in every run; origin names the input file by its basename with
the record's byte offset (`FILE@OFFSET`, WARC) or the row's number (`FILE:ROW`, already-extracted text).
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

# The columns every document row carries, in this order; stages append their own.
DOCUMENT_FIELDS = [
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("url", pa.string()),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("lang", pa.string()),
    pa.field("lang_score", pa.float64()),
    pa.field("text", pa.string()),
]
DOCUMENT_SCHEMA = pa.schema(DOCUMENT_FIELDS)

DEFAULT_SOURCE = "common-crawl"  # the `source` of documents when none is named

# Written next to the document columns while a stage runs; consumed by the stage output writer.
DROP_REASON = "drop_reason"  # null: kept; else the first reason that applied
IN_BYTES = "in_bytes"  # bytes of the input row (a WARC record, an input line), for stats.json
IN_ROWS = "in_rows"  # 1 for the row that stands for its input row, 0 for extra pieces of a split one


def doc_id(source: str, origin: str) -> str:
    """First 16 hex digits of sha1(source + NUL + origin): the same on every machine and run."""
    return hashlib.sha1(f"{source}\0{origin}".encode()).hexdigest()[:16]


def warc_origin(warc_path: str, offset: int) -> str:
    """Origin of a WARC record: the file's basename and the record's byte offset."""
    return f"{warc_path.rstrip('/').rsplit('/', 1)[-1]}@{offset}"


def line_origin(input_path: str, line_number: int) -> str:
    """Origin of a row of an already-extracted source: the file's basename and its 0-based row number."""
    return f"{input_path.rstrip('/').rsplit('/', 1)[-1]}:{line_number}"


def bucket_of(doc_id_hex: str, num_buckets: int) -> int:
    """Output file a document goes to; a stable hash of doc_id (its first 8 hex digits)."""
    return int(doc_id_hex[:8], 16) % num_buckets
