"""The stage abstraction: extract, ingest and cleanup on it write what they wrote before it, and a new
stage of a few lines gets the command line, stats, reuse and --keep-dropped from it alone."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blending.stage_folder import InputError
from dataprep.config import DataprepConfig
from dataprep.framework.stage import DocumentFilter, Extras, Option, Transformed, WholeDatasetStage
from dataprep.pipeline import run
from tests.helpers import GOLDEN_STAGES, golden_files, write_golden_stages


class ShortLines(DocumentFilter):
    """A toy stage: drops documents whose first line is shorter than --min-chars; scores that line."""

    name, help, reasons = "short-lines", "drops documents with a short first line", ["short_first_line"]
    options = [Option("--min-chars", "shortest first line kept", type=int, default=20)]
    columns = [pa.field("first_line_chars", pa.int64())]

    def score(self, batch):
        return {"first_line_chars": [len((t or "").split("\n")[0]) for t in batch.column("text").to_pylist()]}

    def keep(self, row):
        return "short_first_line" if row["first_line_chars"] < self.opts["min_chars"] else None


class Paragraphs(WholeDatasetStage):
    """A toy whole-dataset stage: a document becomes one row per paragraph; one paragraph only: dropped."""

    name, help, reasons = "paragraphs", "one row per paragraph", ["one_paragraph"]
    columns = [pa.field("piece", pa.int32())]

    def transform(self, documents):
        from pyspark.sql import functions as F

        pieces = documents.select("*", F.posexplode(F.split("text", "\n\n")).alias("piece", "part"))
        single = F.size(F.split("text", "\n\n")) == 1
        rows = pieces.where(~single | (F.col("piece") == 0)).select(
            F.when(single, F.col("doc_id")).otherwise(F.substring(F.sha1(F.concat_ws("\0", "doc_id", "piece")), 1, 16))
            .alias("doc_id"), "source", "url", "origin", "lang", "lang_score", F.col("part").alias("text"), "piece",
            F.when(single, "one_paragraph").alias("drop_reason"),
            F.when(F.col("piece") == 0, F.col("in_bytes")).otherwise(0).alias("in_bytes"),
            F.when(F.col("piece") == 0, 1).otherwise(0).alias("in_rows"))
        return Transformed(rows, {"paragraphs": "split on blank lines"})

    def extras(self, tally, figures, stats):
        return Extras({"pieces_per_document": stats.out_rows / stats.kept_rows, **figures},
                      {"pieces.txt": b"written before the folder is renamed into place\n"})


def _config() -> DataprepConfig:
    config = DataprepConfig()
    config.output.num_buckets = 2
    return config


def test_stages_write_byte_identical_folders_to_before(spark, tmp_path):
    # The golden folders and how to regenerate them: tests/fixtures/stages_before/README.md.
    for name in write_golden_stages(spark, tmp_path):
        before = golden_files(GOLDEN_STAGES / name)
        assert len(before) > 4
        now = golden_files(tmp_path / name)
        assert [k for k in before if now.get(k) != before[k]] == [], name


@pytest.fixture(scope="module")
def documents(spark, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("documents")
    texts = ["A first line long enough to stay\nand more", "Too short\nthough the rest is long enough", "x",
             "First paragraph.\n\nSecond paragraph.\n\nThird."]
    (root / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    run("ingest", spark, str(root / "docs.jsonl"), str(root / "in"), _config(), source="s", format="jsonl")
    return root / "in"


def test_a_ten_line_stage_gets_cli_stats_reuse_and_dropped_rows(spark, documents, tmp_path, capsys, monkeypatch):
    import dataprep.pipeline

    monkeypatch.setattr(dataprep.pipeline, "STAGES", [*dataprep.pipeline.STAGES, f"{__name__}:ShortLines"])
    from dataprep.__main__ import main

    with pytest.raises(SystemExit):
        main(["short-lines", "--help"])
    assert "--min-chars" in capsys.readouterr().out
    args = ["short-lines", "--input", str(documents), "--output", str(tmp_path / "out"), "--num-buckets", "1",
            "--keep-dropped", "--min-chars", "12"]
    assert main(args) == 0
    assert "short_first_line" in capsys.readouterr().out
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert (stats["in"]["rows"], stats["kept"]["rows"], stats["dropped"]) == (4, 2, {"short_first_line": 2})
    kept = pq.read_table(tmp_path / "out" / "part-00000.parquet")
    assert sorted(kept.column("first_line_chars").to_pylist()) == [16, 32]
    dropped = pq.read_table(tmp_path / "out" / "dropped" / "part-00000.parquet")
    assert sorted(dropped.column("first_line_chars").to_pylist()) == [1, 9]

    before = (tmp_path / "out" / "_SUCCESS").stat().st_mtime_ns
    assert main(args) == 0 and "reused" in capsys.readouterr().out
    assert (tmp_path / "out" / "_SUCCESS").stat().st_mtime_ns == before
    assert main(args[:-1] + ["8"]) == 2  # another option value: refused without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(args[:-1] + ["8", "--overwrite"]) == 0
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["kept"]["rows"] == 3


def test_a_whole_dataset_stage_splits_documents_and_accounts_for_input_rows(spark, documents, tmp_path):
    stats = run(Paragraphs, spark, str(documents), str(tmp_path / "out"), _config(), keep_dropped=True)
    assert (stats.in_rows, stats.kept_rows, stats.dropped, stats.out_rows) == (4, 1, {"one_paragraph": 3}, 3)
    assert stats.extra == {"pieces_per_document": 3.0, "paragraphs": "split on blank lines"}
    assert (tmp_path / "out" / "pieces.txt").is_file()
    kept = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "out").glob("part-*.parquet")))
    assert sorted(zip(kept.column("piece").to_pylist(), kept.column("text").to_pylist())) == [
        (0, "First paragraph."), (1, "Second paragraph."), (2, "Third.")]


def test_several_inputs_are_unioned_and_a_document_twice_is_refused(spark, documents, tmp_path):
    with pytest.raises(InputError, match="the same doc_id"):
        run(ShortLines, spark, [str(documents), str(documents)], str(tmp_path / "out"), _config())
    assert not (tmp_path / "out").exists()


def test_an_option_the_stage_does_not_have_is_refused(spark, tmp_path):
    with pytest.raises(TypeError, match="cleanup has no options \\['min_chars'\\]"):
        run("cleanup", spark, str(GOLDEN_STAGES / "extract"), str(tmp_path / "x"), min_chars=3)
