"""Crawled text and URLs reach the terminal with their control characters shown, not obeyed."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from blending.locate import format_text as locate_text
from blending.terminal import printable, printable_json
from reporting.__main__ import main as reporting_main

HOSTILE = "clear\x1b[2J\x1b]0;title\x07 csi\x9b31m del\x7f nul\x00"


def test_controls_are_escaped_but_tabs_and_newlines_kept():
    assert printable("a\x1b[31mb\tc\nd\x9be") == "a\\x1b[31mb\tc\nd\\x9be"
    assert printable("plain text, é and 字") == "plain text, é and 字"
    escaped = printable_json(json.dumps({"text": HOSTILE}, ensure_ascii=False))
    assert json.loads(escaped) == {"text": HOSTILE}
    assert not any(ch in escaped for ch in "\x1b\x07\x9b\x7f\x00")


def test_inspect_shows_a_dropped_documents_controls_escaped(tmp_path, capsys):
    folder = tmp_path / "cleanup"
    (folder / "dropped").mkdir(parents=True)
    (folder / "_SUCCESS").write_text(json.dumps({"stage": "cleanup", "inputs": []}))
    (folder / "stats.json").write_text(json.dumps({
        "stage": "cleanup", "version": 1, "in": {"rows": 1, "bytes": 40}, "kept": {"rows": 0, "bytes": 0},
        "dropped": {"too_short": 1}, "out": {"rows": 0, "bytes": 0, "tokens": None}, "extra": {}}))
    pq.write_table(pa.table({"doc_id": ["0123456789abcdef"], "origin": ["a.warc.gz@0"],
                             "url": [f"http://x/{HOSTILE}"], "text": [HOSTILE], "drop_reason": ["too_short"]}),
                   folder / "dropped" / "part-00000.parquet")
    assert reporting_main(["inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "\\x1b[2J" in out and "\\x9b31m" in out and "http://x/clear\\x1b" in out
    assert not any(ch in out for ch in "\x1b\x07\x9b\x7f\x00")


def test_locate_shows_a_documents_controls_escaped():
    document = {"source": "web", "shard": "web/train_00000", "doc": 0, "token_range": [0, 5], "tokens": 5,
                "doc_id": "0123456789abcdef", "origin": "a.warc.gz@0", "url": f"http://x/{HOSTILE}", "text": HOSTILE}
    shown = locate_text({"query": {"doc_id": document["doc_id"]}, "documents": [document]})
    assert "\\x1b[2J" in shown and "url http://x/clear\\x1b" in shown
    assert not any(ch in shown for ch in "\x1b\x07\x9b\x7f\x00")
