"""`python -m dataprep run` on the sample crawl: every stage once, a second run reuses all, a changed
config section reruns its stage and those after it, several sources, the funnel."""

import json
import shutil
from pathlib import Path

import pytest

from dataprep.__main__ import main
from dataprep.pipeline import (
    RunConfigError,
    SourceSpec,
    chain,
    funnel_levels,
    load_run_config,
    pipeline_line,
    run_pipeline,
    source_stages,
)
from dataprep.schema import DEFAULT_SOURCE
from tests.helpers import PIPELINE_OPTIONS, pipeline_run_config

FIXTURES = Path(__file__).parent / "fixtures"
# Options that keep the stages after cleanup cheap where the test is about the pipeline, not about them.
SMALL = {"task": ["copa"]}


def _stats(folder: Path) -> dict:
    return json.loads((folder / "stats.json").read_text())


def _written(run: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in run.glob("*/_SUCCESS")}


def test_the_order_is_the_papers():
    names = [s.name for s in source_stages()] + [s.name for s in chain()]
    assert names[:3] == ["extract", "ingest", "cleanup"]
    assert pipeline_line().startswith("extract | ingest -> cleanup")


def test_every_stage_runs_once_each_reading_the_one_before(pipeline_run):
    stages = ["extract"] + [s.name for s in chain()]
    assert sorted(_written(pipeline_run)) == sorted(stages)
    for before, after in zip(stages, stages[1:]):
        assert _stats(pipeline_run / after)["in"]["rows"] == _stats(pipeline_run / before)["out"]["rows"]
        record = json.loads((pipeline_run / after / "_SUCCESS").read_text())
        assert [i["stage"] for i in record["inputs"]] == [before]


def test_a_second_run_reuses_every_stage_and_prints_the_funnel(pipeline_run, sample_crawl, tmp_path, capsys):
    # the command line's shorthand makes the same run as the fixture's; a copied run folder is reused too
    copy = tmp_path / "run"
    shutil.copytree(pipeline_run, copy)
    before = _written(copy)
    args = ["run", "--input", str(sample_crawl[0] / "*.warc.gz"), "--out", str(copy), "--num-buckets", "4",
            "--keep-dropped"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused") == len(before)
    assert "extract funnel" in printed and "cleanup funnel" in printed
    assert _written(copy) == before
    # the plot is the reporting tool's, which the run names: the service writes only stage folders
    assert f"python -m reporting inspect {copy}" in printed and not (copy / "funnel.png").exists()


@pytest.mark.slow  # Spark jobs beyond the shared ones: the stages run again to compare
def test_a_changed_cleanup_threshold_reruns_cleanup_and_after_not_extract(spark, pipeline_run, sample_crawl, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(pipeline_run, copy)
    before = _written(copy)
    config = pipeline_run_config()
    config.cleanup.min_chars = 300
    logged = []
    source = SourceSpec(DEFAULT_SOURCE, "extract", [str(sample_crawl[0] / "*.warc.gz")])
    run_pipeline(spark, [source], str(copy), config, {**PIPELINE_OPTIONS, **SMALL}, keep_dropped=True,
                 log=logged.append)
    after = _written(copy)
    rerun = {name for name in before if after[name] != before[name]}
    assert rerun == {s.name for s in chain()}  # cleanup and every stage after it
    assert _stats(copy / "cleanup")["dropped"]["too_short"] < _stats(pipeline_run / "cleanup")["dropped"]["too_short"]
    assert sum("reused" in line for line in logged) == 1  # extract


@pytest.mark.slow  # Spark jobs beyond the shared ones: the stages run again to compare
def test_several_sources_run_apart_until_a_whole_dataset_stage(spark, tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "output:\n  num_buckets: 2\n"
        "cleanup:\n  min_chars: 100\n"
        "sources:\n"
        f"  - name: web\n    kind: extract\n    inputs: [{FIXTURES / 'warc' / 'whirlwind.warc.gz'}]\n"
        f"  - name: books\n    kind: ingest\n    format: text\n    unit: paragraph\n"
        f"    inputs: [{FIXTURES / 'text' / 'sherlock_holmes_head.txt'}]\n"
        "    skip: [quality]\n"
    )
    config, sources = load_run_config(config_file)
    assert [(s.name, s.kind, s.options, s.skip) for s in sources] == [
        ("web", "extract", {}, []), ("books", "ingest", {"format": "text", "unit": "paragraph"}, ["quality"])]
    done = run_pipeline(spark, sources, str(tmp_path / "run"), config, SMALL, log=lambda _: None)
    folders = [str(Path(folder).relative_to(tmp_path / "run")) for folder, _ in done]
    # the curated source skips the quality classifier, as the paper's recipe does: dedup reads its cleanup
    assert folders == ["web/extract", "books/ingest", "web/cleanup", "books/cleanup", "web/quality", "books/cleanup",
                       "dedup", "decontaminate"]
    assert not (tmp_path / "run" / "books" / "quality").exists()
    books = _stats(tmp_path / "run" / "books" / "cleanup")
    assert books["kept"]["rows"] > 0 and books["dropped"]["too_short"] > 0
    dedup_inputs = json.loads((tmp_path / "run" / "dedup" / "_SUCCESS").read_text())["inputs"]
    assert sorted(i["stage"] for i in dedup_inputs) == ["cleanup", "quality"]  # books' cleanup, web's quality
    # the funnel still adds up: the quality level counts the books as passing through
    quality = next(level for level in funnel_levels(done) if level.stage == "quality")
    web = _stats(tmp_path / "run" / "web" / "quality")
    assert quality.in_rows == web["in"]["rows"] + books["out"]["rows"]
    assert quality.kept_rows == web["kept"]["rows"] + books["out"]["rows"]
    quality.check()


def test_only_per_source_stages_can_be_skipped(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"sources:\n  - {{name: web, inputs: [{FIXTURES / 'warc' / 'whirlwind.warc.gz'}], "
                           "skip: [dedup]}\n")
    with pytest.raises(RunConfigError, match="only the per-document stages can be skipped.*quality"):
        load_run_config(config_file)


def test_the_papers_run_config_names_the_blends_sources():
    import yaml

    from dataprep.framework.stage import stage_options
    from dataprep.pipeline import stage_class

    root = Path(__file__).resolve().parents[1]
    config, sources = load_run_config(root / "infra" / "pipeline.yaml")
    for source in sources:
        stage_options(stage_class(source.kind), source.options, config)  # every option is the stage's
    blend = yaml.safe_load((root / "infra" / "blend.yaml").read_text())
    assert {s.name for s in sources} <= {s["name"] for s in blend["sources"]}
    # the paper's recipe: the quality classifier filters the Common Crawl snapshots only
    assert {s.name for s in sources if "quality" not in s.skip} == {"cc_2020_50", "cc_2021_04"}
