"""The quality stage under Spark: scores and Pareto decisions on real documents of varied quality, the
same with 1 and 8 input partitions and across reruns, every row accounted for with its columns."""

import contextlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dataprep.config import DataprepConfig
from dataprep.framework.spark_folders import read_input_folders as read_stage_outputs
from dataprep.pipeline import run
from dataprep.quality.corpus import default_paths, read_documents
from dataprep.quality.pareto import keeps, pareto_draw


def _config(buckets: int) -> DataprepConfig:
    config = DataprepConfig()
    config.output.num_buckets = buckets
    return config


@pytest.fixture(scope="module")
def documents(spark, tmp_path_factory) -> dict[int, Path]:
    """The same 300 real documents (curated prose and crawled-page text) as ingest folders of 1 and of 8
    part files."""
    root = tmp_path_factory.mktemp("quality-input")
    positives, negatives = default_paths()
    picked = [d for d in read_documents(positives[0])][::3][:150] + [d for d in read_documents(negatives[0])][:150]
    with open(root / "mixed.jsonl", "w") as f:
        for document in picked:
            f.write(json.dumps({"text": document["text"]}) + "\n")
    folders = {}
    for buckets in (1, 8):
        folders[buckets] = root / f"ingest-{buckets}"
        run("ingest", spark, [str(root / "mixed.jsonl")], str(folders[buckets]), _config(buckets),
            format="jsonl", source="mixed")
    return folders


def _rows(folder: Path) -> list[dict]:
    parts = sorted(folder.glob("part-*.parquet")) + sorted((folder / "dropped").glob("part-*.parquet"))
    return [row for part in parts for row in pq.read_table(part).to_pylist()]


def _parts(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("part-*.parquet"))}


@contextlib.contextmanager
def one_partition_per_file(spark, folder: Path):
    """Spark packs small files into one partition per core; this makes each part file a partition."""
    largest = max(p.stat().st_size for p in folder.glob("part-*.parquet"))
    conf = {"spark.sql.files.openCostInBytes": str(largest), "spark.sql.files.maxPartitionBytes": str(largest)}
    before = {key: spark.conf.get(key) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)


@pytest.mark.slow  # Spark jobs beyond the shared ones: the stages run again to compare
def test_decisions_do_not_depend_on_partitions_or_reruns(spark, documents, default_classifier, tmp_path):
    outputs = {}
    for name, buckets in (("one", 1), ("eight", 8), ("again", 8)):
        outputs[name] = tmp_path / name
        with one_partition_per_file(spark, documents[buckets]) if buckets > 1 else contextlib.nullcontext():
            partitions = read_stage_outputs(spark, [str(documents[buckets])]).documents.rdd.getNumPartitions()
            assert partitions == buckets
            run("quality", spark, [str(documents[buckets])], str(outputs[name]), _config(4), keep_dropped=True,
                model=str(default_classifier))
    assert _parts(outputs["one"]) == _parts(outputs["eight"]) == _parts(outputs["again"])
    stats = json.loads((outputs["eight"] / "stats.json").read_text())
    assert stats["in"]["rows"] == 300 == stats["kept"]["rows"] + stats["dropped"]["low_quality"]
    # a spread of scores, so the decisions were tested on both sides
    assert 50 < stats["dropped"]["low_quality"] < 250


def test_every_row_keeps_its_columns_and_its_decision_is_the_documented_rule(spark, documents, default_classifier,
                                                                               tmp_path):
    out = tmp_path / "quality"
    stats = run("quality", spark, [str(documents[8])], str(out), _config(4), keep_dropped=True,
                model=str(default_classifier), seed=7)
    rows = _rows(out)
    assert len(rows) == 300 and {r["source"] for r in rows} == {"mixed"}
    for row in rows:
        assert 0.0 <= row["quality_score"] <= 1.0
        assert row["pareto_draw"] == pareto_draw(row["doc_id"], 7, 3.0)
        assert (row.get("drop_reason") is None) == keeps(row["quality_score"], row["pareto_draw"])
    extra = stats.extra
    histogram = extra["score_histogram"]
    assert sum(histogram["kept"]) == stats.kept_rows and sum(histogram["dropped"]) == stats.dropped["low_quality"]
    dropped_chars = sum(len(r["text"]) for r in rows if r.get("drop_reason"))
    assert extra["characters"] == {"kept": sum(len(r["text"]) for r in rows) - dropped_chars, "dropped": dropped_chars}
    assert extra["removed_fraction"]["documents"] == stats.dropped["low_quality"] / 300
    assert extra["pareto"] == {"alpha": 3.0, "seed": 7}
    # most crawled-page text goes, most prose stays
    prose = [r for r in rows if r["quality_score"] > 0.5]
    assert sum(r.get("drop_reason") is None for r in prose) > 0.8 * len(prose)


def test_the_pipeline_runs_quality_after_cleanup(pipeline_run):
    stats = json.loads((pipeline_run / "quality" / "stats.json").read_text())
    cleanup = json.loads((pipeline_run / "cleanup" / "stats.json").read_text())
    assert stats["in"]["rows"] == cleanup["out"]["rows"] > 0
    assert set(stats["extra"]["removed_fraction"]) == {"documents", "characters"}
