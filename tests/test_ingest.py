"""Ingest of already-extracted sources: real JSONL (CCNet-processed Common Crawl) and a real text file
(a Project Gutenberg book in ISO-8859-1, CRLF), readers without Spark, then the stage."""

import gzip
import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataprep.config import DataprepConfig
from dataprep.ingest.readers import UnreadableFileError, read_jsonl, read_parquet, read_text
from dataprep.ingest.stage import IngestStage
from dataprep.pipeline import run
from dataprep.schema import doc_id, line_origin

TEXT = Path(__file__).parent / "fixtures" / "text"
JSONL = TEXT / "dolma_cc_en_head-0091.jsonl.gz"
BOOK = TEXT / "sherlock_holmes_head.txt"


def _documents() -> list[dict]:
    with gzip.open(JSONL, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_jsonl_rows_with_nested_url_and_every_bad_line_counted():
    documents = _documents()
    lines = [json.dumps(d).encode() + b"\n" for d in documents]
    lines[3:3] = [b"{not json\n", b"\n", b'["a", "list"]\n', b'{"id": 1}\n', b'{"text": "  \\n "}\n', b"\xff\xfe{}\n"]
    rows = list(read_jsonl(io.BytesIO(b"".join(lines)), "text", "metadata.url"))
    reasons = [(r.number, r.drop_reason) for r in rows if r.drop_reason]
    assert reasons == [(3, "bad_record"), (5, "bad_record"), (6, "missing_text"), (7, "empty_text"), (8, "bad_record")]
    kept = [r for r in rows if not r.drop_reason]
    assert [r.text for r in kept] == [d["text"] for d in documents]
    assert [r.url for r in kept] == [d["metadata"]["url"] for d in documents]
    assert kept[3].number == 9  # line numbers count every physical line, the blank one included
    assert sum(r.in_bytes for r in rows) == sum(len(line) for line in lines if line.strip())


def test_text_file_as_one_document_as_paragraphs_and_as_lines():
    data = BOOK.read_bytes()
    (whole,) = list(read_text(io.BytesIO(data), "file"))
    assert "IRENE NORTON, n\u00e9e ADLER" in whole.text  # ISO-8859-1 detected, not mangled
    assert "\r" not in whole.text and whole.in_bytes == len(data)
    paragraphs = list(read_text(io.BytesIO(data), "paragraph"))
    book_lines = whole.text.split("\n")
    assert len(paragraphs) > 100
    for p in paragraphs[:50]:
        assert book_lines[p.number] == p.text.split("\n")[0]  # origin points at the paragraph's first line
    assert [line for p in paragraphs for line in p.text.split("\n")] == [line for line in book_lines if line.strip()]
    lines = list(read_text(io.BytesIO(data), "line"))
    assert len(lines) == sum(1 for line in book_lines if line.strip())


def test_parquet_rows_and_a_file_without_the_text_column(tmp_path):
    documents = _documents()
    table = pa.table({"content": [d["text"] for d in documents], "url": [d["metadata"]["url"] for d in documents]})
    pq.write_table(table, tmp_path / "docs.parquet", row_group_size=3)
    with open(tmp_path / "docs.parquet", "rb") as f:
        rows = list(read_parquet(f, "content", "url"))
    assert [(r.number, r.text, r.url) for r in rows] == [
        (i, d["text"], d["metadata"]["url"]) for i, d in enumerate(documents)
    ]
    with open(tmp_path / "docs.parquet", "rb") as f, pytest.raises(UnreadableFileError, match="no column 'text'"):
        list(read_parquet(f, "text", "url"))


def _config() -> DataprepConfig:
    config = DataprepConfig()
    config.output.num_buckets = 2
    return config


def test_ingest_stage_jsonl_and_text(spark, tmp_path):
    broken = tmp_path / "extra.jsonl"
    broken.write_text('{"text": "Short but real: the quick brown fox jumps over the lazy dog."}\n{oops\n')
    stats = run(IngestStage, spark, [str(JSONL), str(broken)], str(tmp_path / "jsonl"), _config(), source="cc-en-head",
                format="jsonl", url_field="metadata.url", keep_dropped=True)
    assert (stats.in_rows, stats.kept_rows, stats.dropped) == (12, 11, {"bad_record": 1, "missing_text": 0, "empty_text": 0, "read_failed": 0})
    assert stats.extra["languages"] == {"en": 11}
    kept = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "jsonl").glob("part-*.parquet")))
    assert kept.column_names == ["doc_id", "source", "url", "origin", "lang", "lang_score", "text"]
    origins = set(kept.column("origin").to_pylist())
    assert "dolma_cc_en_head-0091.jsonl.gz:0" in origins and "extra.jsonl:0" in origins
    for row in kept.to_pylist():
        assert row["doc_id"] == doc_id("cc-en-head", row["origin"])
    assert stats.extra["faults"][0]["origin"] == line_origin(str(broken), 1)

    book = run(IngestStage, spark, [str(BOOK)], str(tmp_path / "book"), _config(), source="gutenberg", format="text",
               unit="paragraph")
    assert book.in_rows == book.kept_rows > 100
    assert book.extra["languages"]["en"] >= 0.85 * book.kept_rows  # the rest: headings CLD2 cannot place
    again = run(IngestStage, spark, [str(BOOK)], str(tmp_path / "book-again"), _config(), source="gutenberg",
                format="text", unit="paragraph")
    assert again.to_dict() == book.to_dict()
    for part in sorted((tmp_path / "book").glob("part-*.parquet")):
        twin = tmp_path / "book-again" / part.name
        assert hashlib.sha256(part.read_bytes()).digest() == hashlib.sha256(twin.read_bytes()).digest()
