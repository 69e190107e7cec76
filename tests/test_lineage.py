"""Lineage and inspection on the shared pipeline run: a training sample back to its WARC record and
every stage's decision on it, a dropped record traced to its stage and reason, inspectable drops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from blending.__main__ import main as blending_main
from blending.manifest import load_manifest
from blending.reader import DataStream
from blending.stages import find_stage_folders
from dataprep.config import ExtractConfig
from dataprep.extract.record import extract_record
from dataprep.extract.warc_reader import read_warc
from dataprep.schema import DEFAULT_SOURCE
from reporting.__main__ import main as reporting_main
from reporting.inspect import inspect

SEQ, SAMPLES = 64, 200


def reextract(crawl: Path, origin: str) -> str | None:
    """The text extract makes of the WARC record at `origin` (file@offset), read again from the file."""
    name, offset = origin.split("@")
    with open(crawl / name, "rb") as f:
        for raw in read_warc(f, ExtractConfig().max_payload_bytes):
            if raw.offset == offset:
                return extract_record(raw, name, DEFAULT_SOURCE, ExtractConfig()).text
    return None


def locate_json(args: list[str], capsys) -> tuple[int, dict]:
    code = blending_main(args)
    return code, json.loads(capsys.readouterr().out)


def test_a_located_samples_warc_records_reextracted_give_the_same_text(pipeline_run, pipeline_shards, sample_crawl,
                                                                       capsys):
    manifest = load_manifest(pipeline_shards)
    train, _ = DataStream(SEQ, 1234, SAMPLES, 1).datasets(manifest, cache_dir=pipeline_shards.parent / "cache")
    checked = 0
    for sample in (0, 37, 151):
        code, answer = locate_json(["locate", str(pipeline_shards), "--sample", str(sample), "--seq-len", str(SEQ),
                                    "--samples", str(SAMPLES), "--stages", str(pipeline_run), "--json"], capsys)
        assert code == 0 and answer["sample"] == sample
        for d in answer["documents"]:
            stages = {h["stage"]: h for h in d["stages"]}
            assert all(h["kept"] for h in d["stages"]) and "extract" in stages and "cleanup" in stages
            assert stages["extract"]["decisions"]["lang"] and stages["extract"]["decisions"]["lang_score"] > 0
            if any(h["decisions"].get("piece") is not None for h in d["stages"]):
                continue  # a decontaminated piece: its text is a cut of the record's
            assert reextract(sample_crawl[0], d["origin"]) == d["text"]
            checked += 1
    assert checked >= 3


def test_a_dropped_origin_is_traced_to_its_stage_and_reason(pipeline_run, pipeline_shards, capsys):
    folders = {f.name: f for f in find_stage_folders(pipeline_run)}
    for stage, reason in (("cleanup", "non_english"), ("extract", "not_html")):
        origin = next(r["origin"] for r in inspect(pipeline_run, stage, reason, 1).samples[0].rows)
        code, answer = locate_json(["locate", str(pipeline_shards), "--origin", origin, "--stages",
                                    str(pipeline_run), "--json"], capsys)
        assert code == 1 and answer["documents"] == []
        assert answer["dropped_at"] == {"stage": stage, "reason": reason}
        assert [h["stage"] for h in answer["stages"]][-1] == stage and folders[stage]
    assert blending_main(["locate", str(pipeline_shards), "--origin", origin, "--stages", str(pipeline_run)]) == 1
    out = capsys.readouterr().out
    assert "not in the shards" in out and "dropped by extract: not_html" in out


def test_every_drop_reason_of_every_stage_has_inspectable_examples(pipeline_run, tmp_path, capsys):
    result = inspect(pipeline_run, sample=3, histograms=True)
    stages = {f.name for f in result.folders}
    assert {"extract", "cleanup"} <= stages
    expected = {(f.name, r) for f in result.folders for r, n in f.dropped_counts.items() if n}
    assert {(s.stage, s.reason) for s in result.samples} == expected
    for s in result.samples:
        assert 1 <= len(s.rows) <= 3 and len(s.rows) == min(3, s.count)
        assert all(row["reason"] == s.reason and row["origin"] and "text" in row for row in s.rows)
    assert inspect(pipeline_run, sample=3).samples[0].rows == result.samples[0].rows  # deterministic
    assert any(h.column == "lang_score" and sum(h.kept) for h in result.histograms)

    page = tmp_path / "inspect.html"
    assert reporting_main(["inspect", str(pipeline_run), "--sample", "2", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    html = page.read_text()
    for stage, reason in expected:
        assert f"{stage}: {reason} (" in out and f"{stage}: {reason} (" in html
    assert html.count("data:image/png;base64") >= 2  # the funnel and at least one histogram
    assert reporting_main(["inspect", str(pipeline_run), "--stage", "cleanup", "--reason", "no_such_reason"]) == 2


def test_without_the_full_dropped_rows_the_slim_index_samples_and_traces(pipeline_run, pipeline_shards, tmp_path,
                                                                         capsys):
    """A run without --keep-dropped: every stage's dropped-row index alone (doc_id, origin, reason)."""
    slim = tmp_path / "run"
    shutil.copytree(pipeline_run, slim, ignore=shutil.ignore_patterns("dropped"))
    assert not list(slim.glob("*/dropped")) and list(slim.glob("*/dropped_index/*.parquet"))
    full = inspect(pipeline_run, "cleanup", "non_english", 2).samples[0].rows
    rows = inspect(slim, "cleanup", "non_english", 2).samples[0].rows
    assert [r["doc_id"] for r in rows] == [r["doc_id"] for r in full]  # the same sample, from the index
    assert all("text" not in r and r["origin"] == f["origin"] for r, f in zip(rows, full, strict=True))
    code, answer = locate_json(["locate", str(pipeline_shards), "--origin", rows[0]["origin"], "--stages",
                                str(slim), "--json"], capsys)
    assert code == 1 and answer["dropped_at"] == {"stage": "cleanup", "reason": "non_english"}
    assert reporting_main(["inspect", str(slim), "--stage", "cleanup", "--sample", "1"]) == 0
    assert "no text: the stage ran without --keep-dropped" in capsys.readouterr().out


def test_an_origin_dropped_by_dedup_is_reported_with_its_representative(pipeline_run, pipeline_shards, capsys):
    dedup = next(f for f in find_stage_folders(pipeline_run) if f.name == "dedup")
    reasons = [r for r, n in dedup.dropped_counts.items() if n]
    assert reasons  # the sample crawl holds recrawls and near-duplicates
    for reason in reasons:
        row = inspect(pipeline_run, "dedup", reason, 1).samples[0].rows[0]
        code, answer = locate_json(["locate", str(pipeline_shards), "--origin", row["origin"], "--stages",
                                    str(pipeline_run), "--json"], capsys)
        assert code == 1 and answer["dropped_at"] == {"stage": "dedup", "reason": reason}
        verdict = answer["stages"][-1]
        representative = verdict["representative"]
        assert representative["doc_id"] == verdict["decisions"]["duplicate_of"] == row["duplicate_of"]
        kept = locate_json(["locate", str(pipeline_shards), "--origin", representative["origin"], "--stages",
                            str(pipeline_run), "--json"], capsys)[1]
        history = kept["documents"][0]["stages"] if kept["documents"] else kept["stages"]
        at_dedup = next(h for h in history if h["stage"] == "dedup")
        assert at_dedup["kept"] and at_dedup["decisions"]["cluster_id"] == representative["doc_id"]
    assert blending_main(["locate", str(pipeline_shards), "--origin", row["origin"], "--stages", str(pipeline_run)]) == 1
    assert f"representative {row['duplicate_of']}" in capsys.readouterr().out
