"""The run report on real outputs: the shared pipeline run's stage folders, shards written by blending's
writer, a training run's records written by the trainer's own reporter; plus a stage the report has
never heard of, which must appear in its place without a change to the report. The funnel table and
plot the report, `inspect` and `funnel` share; the PNGs a report deletes when written again."""

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blending.stage_stats import StageStats
from reporting.__main__ import main as reporting_main
from reporting.collect import Stage, collect
from reporting.funnel import funnel_table
from reporting.inspect import format_text, inspect
from reporting.report import WRITTEN, main, write_report
from tests.helpers import build_prose_shards
from trainer.presets import get_preset
from trainer.reporting import RunReporter

VAL_LOSSES = [6.91, 6.35, 5.82]


def _stage_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("stats.json") if (p.parent / "_SUCCESS").exists())


def _write_training_run(run: Path, unigram: float) -> None:
    cfg = get_preset("tiny-cpu")
    run.mkdir(parents=True)
    reporter = RunReporter(run, cfg, active=True, last_step=0, reference_loss=unigram, peak_tflops=None,
                           world_size=8, padded_vocab=512)
    seq = cfg.model.seq_length
    for step in range(1, 31):
        reporter.train_step(step, step * 32, loss=7.2 - step * 0.05, lr=3e-3, global_batch=32, elapsed=0.5)
        if step % 10 == 0:
            reporter.validation(step, step * 32 * seq, VAL_LOSSES[step // 10 - 1])
    reporter.finish(status="target", steps=30, tokens=30 * 32 * seq, val_loss=VAL_LOSSES[-1], target=0.85 * unigram,
                    target_is_unigram=True, signal_name=None)


def _add_unknown_stage(root: Path, after: Path) -> Path:
    """A stage folder of a stage the report has no code for: it read `after`'s parts, adds a score."""
    folder = root / "rescore"
    folder.mkdir()
    parts = sorted(after.glob("part-*.parquet"))
    scores = []
    for part in parts:
        table = pq.read_table(part)
        table = table.drop_columns([c for c in ("quality_score",) if c in table.column_names])
        score = pa.array([(i % 20) / 20 for i in range(table.num_rows)], pa.float64())
        scores += score.to_pylist()
        pq.write_table(table.append_column("quality_score", score), folder / part.name)
    kept = sum(1 for s in scores if s >= 0.25)
    stats = {"stage": "rescore", "version": 1, "in": {"rows": len(scores), "bytes": 1000},
             "kept": {"rows": kept, "bytes": 900}, "dropped": {"low_score": len(scores) - kept},
             "out": {"rows": kept, "bytes": 900, "tokens": None}, "extra": {"threshold": 0.25}}
    (folder / "stats.json").write_text(json.dumps(stats))
    (folder / "_SUCCESS").write_text(json.dumps({"stage": "rescore", "inputs": [
        {"path": str(p.resolve()), "size": p.stat().st_size} for p in parts]}))
    return folder


@pytest.fixture(scope="module")
def run_root(pipeline_run, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report") / "demo"
    shutil.copytree(pipeline_run, root)
    build_prose_shards(root / "shards")
    _write_training_run(root / "train", unigram=6.8)
    return root


@pytest.fixture(scope="module")
def page(run_root) -> tuple[str, str, Path]:
    assert main(str(run_root)) == 0
    out = run_root / "report"
    return (out / "index.html").read_text(), (out / "report.md").read_text(), out


def test_every_image_the_page_names_exists(page):
    html, md, out = page
    images = re.findall(r'<img src="([^"]+)"', html)
    assert {"funnel.png"} <= set(images) and any(i.startswith("loss-") for i in images)
    for name in images + re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / name).is_file() and (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not re.search(r'(src|href)="(https?:|/)', html)  # opens from disk: nothing fetched


def test_every_stage_appears_in_pipeline_order_with_its_reasons(page, run_root):
    html, md, _ = page
    folders = _stage_folders(run_root)
    assert {f.name for f in folders} >= {"extract", "cleanup"}
    report = collect(run_root, run_root / "report")
    order = [s.label for s in report.stages]
    assert order.index("extract") < order.index("cleanup")  # lineage, not the alphabet
    for folder in folders:
        stats = json.loads((folder / "stats.json").read_text())
        label = folder.relative_to(run_root).as_posix()
        for text in (html, md):
            assert f"{label} ({stats['stage']})" in text
            assert f"{stats['in']['rows']:,}" in text
        for reason, n in stats["dropped"].items():
            assert reason in md
            if n:
                assert f"{n:,} (" in md


def test_blend_table_and_training_figures(page, run_root):
    _, md, _ = page
    manifest = json.loads((run_root / "shards" / "manifest.json").read_text())
    for name, source in manifest["sources"].items():
        tokens = sum(s["tokens"] for s in source["train"])
        assert re.search(rf"\| {name} \| [\d,]+ \| {tokens:,} \|", md)
    assert f"{VAL_LOSSES[-1]:.4f}" in md and f"{1 - VAL_LOSSES[-1] / 6.8:.1%} below" in md
    assert "epochs (in this run)" in md


def test_a_stage_added_later_appears_after_the_stage_it_read(run_root, tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(run_root, root, ignore=shutil.ignore_patterns("report"))
    last = [s for s in collect(root, root / "report").stages if s.name != "blend"][-1]
    _add_unknown_stage(root, last.folder)
    index = write_report(collect(root, root / "report"), root / "report")
    html = index.read_text()
    assert "rescore (rescore)" in html and "low_score" in html and "threshold: 0.25" in html
    assert html.index(f"{last.label} ({last.name})") < html.index("rescore (rescore)")
    # a quality_score column is drawn once, at the first stage that has it (here or the quality stage)
    assert len(list((root / "report").glob("quality-*.png"))) == 1


def test_nothing_to_report_is_an_error(tmp_path):
    from blending.stage_folder import InputError

    with pytest.raises(InputError, match="nothing to report"):
        main(str(tmp_path))


def _markdown_rows(md: str, header: list[str]) -> list[list[str]]:
    """The rows of the Markdown table under `header`, cells unescaped."""
    lines = md[md.index("| " + " | ".join(header) + " |"):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("| "):
            break
        rows.append([c.replace("\\|", "|") for c in line[2:-2].split(" | ")])
    return rows


def test_the_report_and_inspect_print_the_one_funnel_table(page, run_root):
    _, md, _ = page
    stages = collect(run_root, run_root / "report").stages
    table = funnel_table(stages)
    assert _markdown_rows(md, table.header) == table.rows  # the report's table is funnel_table's
    text = format_text(inspect(run_root, sample=1))
    assert text.startswith(table.text())  # and inspect prints the same table, as text
    for row, kind in zip(table.rows, table.kinds):
        assert row[0] in text and (kind != "total" or all(cell in text for cell in row))


def test_the_funnel_of_stage_folders_given_by_hand(tmp_path, capsys):
    extract = StageStats("extract", in_rows=100, in_bytes=5000, kept_rows=30, kept_bytes=2000,
                         dropped={"not_response": 60, "not_html": 10, "decode_error": 0}, out_rows=30, out_bytes=2000)
    cleanup = StageStats("cleanup", in_rows=30, in_bytes=2000, kept_rows=20, kept_bytes=1500,
                         dropped={"non_english": 7, "too_short": 3}, out_rows=20, out_bytes=1500)
    for stats in (extract, cleanup):
        (tmp_path / stats.stage).mkdir()
        (tmp_path / stats.stage / "stats.json").write_text(stats.to_json())
    folders = [str(tmp_path / "extract"), str(tmp_path / "cleanup")]
    png = tmp_path / "plots" / "funnel.png"
    assert reporting_main(["funnel", *folders, "--png", str(png)]) == 0
    printed = capsys.readouterr().out
    table = funnel_table([Stage(f, json.loads((Path(f) / "stats.json").read_text())) for f in folders])
    assert printed.startswith(table.text())
    assert [r[3] for r in table.rows] == ["70", "60 (60.0%)", "10 (10.0%)", "0 each", "10", "7 (23.3%)", "3 (10.0%)"]
    assert table.kinds == ["total", "reason", "reason", "unused", "total", "reason", "reason"]
    assert "decode_error: 0 each" in printed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "empty").mkdir()
    assert reporting_main(["funnel", str(tmp_path / "empty")]) == 2  # no stats.json in it or below it


def test_the_funnel_of_a_run_folder_is_its_stages_in_pipeline_order(pipeline_run, capsys):
    assert reporting_main(["funnel", str(pipeline_run)]) == 0
    printed = capsys.readouterr().out
    assert printed.index(f"{pipeline_run / 'extract'} (extract)") < printed.index(f"{pipeline_run / 'cleanup'} (cleanup)")


def test_a_report_written_again_deletes_only_the_pngs_it_wrote(run_root, tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(run_root, root, ignore=shutil.ignore_patterns("report"))
    out = root / "report"
    write_report(collect(root, out), out)
    written = (out / WRITTEN).read_text().split()
    assert "funnel.png" in written and "loss-train.png" in written
    assert sorted(written) == sorted(p.name for p in out.glob("*.png"))
    (out / "notes.png").write_bytes(b"\x89PNG\r\n\x1a\n a user's own picture")
    shutil.rmtree(root / "train")  # the training run is gone: its loss plot must go with it
    write_report(collect(root, out), out)
    assert not (out / "loss-train.png").exists() and "loss-train.png" not in (out / WRITTEN).read_text()
    assert (out / "notes.png").read_bytes().endswith(b"a user's own picture") and (out / "funnel.png").is_file()
