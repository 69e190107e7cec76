"""The extract stage under Spark on a sample crawl and real faulty files: accounting, outcomes per
record against the crawl's truth, byte-identical reruns, reuse, bad files, the command line."""

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from blending.stage_folder import InputError, OutputExistsError
from dataprep.__main__ import main
from dataprep.config import DataprepConfig
from dataprep.extract.stage import ExtractStage
from dataprep.framework.inputs import expand_inputs
from dataprep.framework.spark_rows import BadInputFilesError, Tallies
from dataprep.framework.tally import Tally
from dataprep.pipeline import run

WARC = Path(__file__).parent / "fixtures" / "warc"


def _config(num_buckets: int = 4) -> DataprepConfig:
    config = DataprepConfig()
    config.output.num_buckets = num_buckets
    return config


@pytest.fixture(scope="module")
def crawl(sample_crawl) -> tuple[Path, dict]:
    return sample_crawl


@pytest.fixture(scope="module")
def extracted(pipeline_run) -> Path:
    return pipeline_run / "extract"


def _rows(out: Path) -> dict[str, dict]:
    rows = {}
    for part in sorted(out.glob("part-*.parquet")) + sorted((out / "dropped").glob("part-*.parquet")):
        for row in pq.read_table(part).to_pylist():
            rows[row["origin"]] = row
    return rows


def test_every_record_is_accounted_for(extracted, crawl):
    folder, truth = crawl
    stats = json.loads((extracted / "stats.json").read_text())
    files = sorted(folder.glob("*.warc.gz"))
    assert stats["in"]["rows"] == truth["record_count"] + 1 + 50  # the crawl, the clipped record, CC's 50
    assert stats["in"]["bytes"] == sum(f.stat().st_size for f in files)
    assert stats["in"]["rows"] == stats["kept"]["rows"] + sum(stats["dropped"].values())
    assert stats["dropped"]["truncated_record"] == 2  # the crawl's clipped record and Common Crawl's
    assert stats["dropped"]["corrupt_record"] == 1
    faults = {(f["origin"], f["reason"]) for f in stats["extra"]["faults"]}
    assert ("resiliparse_clipped.warc.gz@0", "truncated_record") in faults
    assert stats["extra"]["bad_files"] == []
    assert len(_rows(extracted)) == stats["in"]["rows"]  # kept + dropped/ hold one row per record


def test_outcomes_match_the_crawls_truth(extracted, crawl):
    _, truth = crawl
    rows = _rows(extracted)
    # Pages whose only text is short or a notice may come out of jusText empty; pages with an article
    # must not.
    may_be_empty = {"short", "javascript_notice", "non_english"}
    empty = 0
    for record in truth["records"]:
        row = rows[record["origin"]]
        assert row["doc_id"] and row["source"] == "common-crawl"
        got = row.get("drop_reason")
        if record["stage"] == "extract":
            assert got == record["expected"], record
        elif got is not None:
            assert (record["category"], got) in {(c, "empty_extraction") for c in may_be_empty}, (record, got)
            empty += 1
        else:
            assert row["text"] and row["lang"] == record["language"], record
    assert empty <= 0.03 * len(truth["records"])


def test_rerun_is_byte_identical_then_reused_and_a_changed_config_refused(spark, crawl, extracted, tmp_path):
    again = tmp_path / "again"
    run(ExtractStage, spark, [str(crawl[0] / "*.warc.gz")], str(again), _config(), keep_dropped=True)

    def digests(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "_SUCCESS"
        }

    assert digests(again) == digests(extracted)
    assert json.loads((again / "_SUCCESS").read_text())["inputs"] == json.loads((extracted / "_SUCCESS").read_text())["inputs"]
    before = (again / "_SUCCESS").stat().st_mtime_ns
    run(ExtractStage, spark, [str(crawl[0] / "*.warc.gz")], str(again), _config(), keep_dropped=True)
    assert (again / "_SUCCESS").stat().st_mtime_ns == before  # reused, not rewritten
    with pytest.raises(OutputExistsError):
        run(ExtractStage, spark, [str(crawl[0] / "*.warc.gz")], str(again), _config(num_buckets=2))


def test_bad_file_fails_the_job_unless_allowed(spark, tmp_path):
    not_warc = tmp_path / "notes.warc.gz"
    not_warc.write_bytes(gzip.compress(b"these are notes, not a WARC file\n"))
    inputs = [str(WARC / "warcio_example.warc.gz"), str(not_warc)]
    with pytest.raises(BadInputFilesError, match="notes.warc.gz: no WARC record in the file"):
        run(ExtractStage, spark, inputs, str(tmp_path / "refused"), _config(2))
    assert not (tmp_path / "refused").exists()
    stats = run(ExtractStage, spark, inputs, str(tmp_path / "allowed"), _config(2), allow_bad_files=True)
    assert stats.extra["bad_files"] == [f"{not_warc}: no WARC record in the file"]
    assert stats.in_rows == 6  # warcio_example.warc.gz's records only


def test_common_crawl_listing_resolves_against_a_base(tmp_path):
    listing = tmp_path / "warc.paths.gz"
    listing.write_bytes(gzip.compress(b"warc/whirlwind.warc.gz\nwarc/resiliparse_clipped.warc.gz\n"))
    base = str(WARC.parent)
    assert expand_inputs([str(listing)], base=base) == [
        f"{base}/warc/resiliparse_clipped.warc.gz", f"{base}/warc/whirlwind.warc.gz"
    ]
    assert expand_inputs([str(listing)], base=base, max_files=1) == [f"{base}/warc/resiliparse_clipped.warc.gz"]
    with pytest.raises(FileNotFoundError):
        expand_inputs([str(tmp_path / "*.warc.gz")])
    twin = tmp_path / "copy" / "whirlwind.warc.gz"
    twin.parent.mkdir()
    shutil.copy(WARC / "whirlwind.warc.gz", twin)
    with pytest.raises(InputError, match="two input files named 'whirlwind.warc.gz'"):
        expand_inputs([str(WARC / "whirlwind.warc.gz"), str(twin)])


def test_command_line(spark, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["extract", "--input", str(WARC / "whirlwind.warc.gz"), str(WARC / "warcio_post-test.warc.gz"),
            "--output", str(out), "--source", "cc-test", "--num-buckets", "2", "--keep-dropped"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "extract funnel" in printed and "not_response" in printed
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in"]["rows"] == 4 + 6 and sorted(p.name for p in out.glob("part-*")) == ["part-00000.parquet", "part-00001.parquet"]
    assert main(args[:-3] + ["--num-buckets", "3"]) == 2  # refused: same folder, other config
    assert "--overwrite" in capsys.readouterr().err


def test_tallies_count_a_unit_once_however_often_it_is_sent(spark):
    tallies = Tallies(spark)
    first = Tally(rows=2)
    first.count("languages", "en")
    first.fault("b.warc.gz@100", "truncated_record", "clipped")
    second = Tally(rows=1)
    second.count("languages", "en")
    second.count("languages", None)
    second.fault("a.warc.gz@99", "corrupt_record", "gzip")
    for unit, tally in [(0, first), (1, second), (0, first)]:  # unit 0 again: a retried task
        tallies.record(unit, tally)
    merged = tallies.merged()
    assert merged.rows == 3
    assert merged.histogram("languages") == {"en": 2, "unknown": 1}
    assert [f["origin"] for f in merged.listed_faults()] == ["a.warc.gz@99", "b.warc.gz@100"]
