"""Rows of already-extracted sources, each with its row number, every input row accounted for.

- jsonl: one JSON object per line (.gz/.bz2/.zst read decompressed); the text is `text_field`
  (a dotted path reaches into nested objects), the URL `url_field` when present. Blank lines are not
  rows; line numbers count every physical line so that an origin points at its line.
- parquet: one row per table row; `text_field` must be a string column.
- text: `unit` says what a document is: the whole file, each non-blank line, or each paragraph (lines
  up to a blank line). Bytes are decoded as UTF-8, else by detection; line ends become "\\n".

Rows that cannot be documents are dropped with a reason, in this order:
  bad_record    a line that is not a JSON object (or not UTF-8)
  missing_text  no `text_field`, or not a string
  empty_text    the text is empty or whitespace
  read_failed   the rest of a remote file, from this row on, that the storage kept failing to give after
                the configured retries (counted by the stage, dataprep/ingest/stage.py)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow.parquet as pq

from dataprep.framework.inputs import READ_FAILED
from dataprep.text.charset import decode_text

FORMATS = ("jsonl", "parquet", "text")
TEXT_UNITS = ("file", "line", "paragraph")
REASONS = ["bad_record", "missing_text", "empty_text", READ_FAILED]


class UnreadableFileError(ValueError):
    """The file as a whole is not of its format (no such column, not Parquet, undecodable text)."""


@dataclass
class SourceRow:
    number: int  # 0-based line (jsonl, text) or row (parquet) number
    in_bytes: int
    text: str | None = None
    url: str | None = None
    drop_reason: str | None = None
    detail: str | None = None


def _field(obj: dict, dotted: str):
    value = obj
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _row(number: int, in_bytes: int, text, url) -> SourceRow:
    if not isinstance(text, str):
        return SourceRow(number, in_bytes, drop_reason="missing_text")
    url = url if isinstance(url, str) and url else None
    if not text.strip():
        return SourceRow(number, in_bytes, url=url, drop_reason="empty_text")
    return SourceRow(number, in_bytes, text, url)


def read_jsonl(f: BinaryIO, text_field: str, url_field: str) -> Iterator[SourceRow]:
    for number, line in enumerate(f):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError) as e:
            yield SourceRow(number, len(line), drop_reason="bad_record", detail=f"{type(e).__name__}: {e}"[:200])
            continue
        if not isinstance(obj, dict):
            yield SourceRow(number, len(line), drop_reason="bad_record", detail=f"a JSON {type(obj).__name__}")
            continue
        yield _row(number, len(line), _field(obj, text_field), _field(obj, url_field))


def read_parquet(f: BinaryIO, text_field: str, url_field: str) -> Iterator[SourceRow]:
    try:
        table = pq.ParquetFile(f)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a file that is not Parquet
        raise UnreadableFileError(f"not a Parquet file: {e}") from e
    names = set(table.schema_arrow.names)
    if text_field not in names:
        raise UnreadableFileError(f"no column {text_field!r} (columns: {', '.join(sorted(names))})")
    columns = [text_field] + ([url_field] if url_field in names and url_field != text_field else [])
    number = 0
    for batch in table.iter_batches(columns=columns, batch_size=1024):
        texts = batch.column(text_field).to_pylist()
        urls = batch.column(url_field).to_pylist() if len(columns) > 1 else [None] * len(texts)
        for text, url in zip(texts, urls):
            size = len(text.encode()) if isinstance(text, str) else 0
            yield _row(number, size, text, url)
            number += 1


def read_text(f: BinaryIO, unit: str) -> Iterator[SourceRow]:
    data = f.read()
    decoded = decode_text(data)
    if decoded is None:
        raise UnreadableFileError("no charset decodes the file")
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")
    if unit == "file":
        yield _row(0, len(data), text, None)
        return
    lines = text.split("\n")
    if unit == "line":
        for number, line in enumerate(lines):
            if line.strip():
                yield _row(number, len(line.encode()), line, None)
        return
    start, block = None, []
    for number, line in enumerate([*lines, ""]):
        if line.strip():
            start = number if start is None else start
            block.append(line)
        elif block:
            paragraph = "\n".join(block)
            yield _row(start, len(paragraph.encode()), paragraph, None)
            start, block = None, []


def read_source(f: BinaryIO, fmt: str, text_field: str, url_field: str, unit: str) -> Iterator[SourceRow]:
    if fmt == "jsonl":
        return read_jsonl(f, text_field, url_field)
    if fmt == "parquet":
        return read_parquet(f, text_field, url_field)
    if fmt == "text":
        return read_text(f, unit)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
