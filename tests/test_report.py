"""The run report on real outputs: the shared pipeline run's stage folders, shards written by blending's
writer, a training run's records written by the trainer's own reporter; plus a stage the report has
never heard of, which must appear in its place without a change to the report."""

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blending.report import collect, main, write_report
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


def test_nothing_to_report_is_an_error(tmp_path, capsys):
    assert main(str(tmp_path)) == 1
    assert "nothing to report" in capsys.readouterr().out
