"""trainer.ablate on the shared pipeline run: a small model trained on the documents after every stage
with two seeds (real one-process training runs), scored on the shipped held-out prose and a task; its
reuse, its determinism per seed, its report section; and its refusals of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blending.stages import find_stage_folders
from reporting.collect import collect
from reporting.report import write_report
from trainer.ablate import AblationError, main, parse_seeds, token_budget
from trainer.heldout import body_of, shipped_texts

# A model small enough that a run is its start-up: 2 layers, hidden 32, 32-token windows, batches of 8.
OVERRIDES = {
    "model.num_layers": 2, "model.hidden_size": 32, "model.num_attention_heads": 2, "model.seq_length": 32,
    "batch.micro_batch_size": 4, "batch.global_batch_size": 8, "batch.rampup_start": 8, "batch.rampup_increment": 8,
    "run.eval_interval": 2, "run.eval_samples": 8, "run.log_interval": 1,
}
TOKENS = 8 * 32 * 4  # four steps


def ablate_args(documents: Path, out: Path) -> list[str]:
    sets = [a for key, value in OVERRIDES.items() for a in ("--set", f"{key}={value}")]
    return ["--documents", str(documents), "--out", str(out), "--tokens", str(TOKENS), "--seeds", "1,2",
            "--vocab-size", "300", "--valid-fraction", "0.2", "--eval-tokens", "2048", "--eval-tasks", "piqa",
            "--eval-limit", "4", "--jobs", "2", *sets]


@pytest.fixture(scope="module")
def ablation(pipeline_run, spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation") / "abl"
    assert main(ablate_args(pipeline_run, out)) == 0
    return out, json.loads((out / "ablation.json").read_text())


@pytest.mark.slow
def test_every_stage_is_a_variant_trained_with_each_seed(ablation, pipeline_run):
    out, result = ablation
    stages = [f.name for f in find_stage_folders(pipeline_run)]
    assert [v["name"] for v in result["variants"]] == stages  # upstream first
    assert result["budget"]["tokens"] == TOKENS and result["seeds"] == [1, 2]
    assert [t["name"] for t in result["heldout"]] == [t.name for t in shipped_texts()]
    for variant in result["variants"]:
        assert variant["documents"] > 0 and variant["tokens"] >= TOKENS
        assert variant["epochs"] == pytest.approx(TOKENS / variant["tokens"])
        assert [r["seed"] for r in variant["runs"]] == [1, 2]
        for run in variant["runs"]:
            summary = json.loads((Path(run["run"]) / "summary.json").read_text())
            assert summary["tokens"] == TOKENS and summary["status"] == "done"
            assert run["valid_loss"] == pytest.approx(summary["val_loss"])
            assert 0 < run["heldout_loss"] < 10 and set(run["heldout"]) == {t["name"] for t in result["heldout"]}
            assert 0 <= run["downstream"]["piqa"] <= 1
        losses = [r["heldout_loss"] for r in variant["runs"]]
        assert losses[0] != losses[1]  # the seed sets the weights and the data order
        assert variant["heldout_loss"]["mean"] == pytest.approx(sum(losses) / 2)
        assert variant["heldout_loss"]["spread"] == pytest.approx(abs(losses[0] - losses[1]) / 2**0.5)
        assert set(variant["downstream"]) == {"piqa"}
    assert [row[0] for row in result["table"]["rows"]] == stages
    assert (out / "ablation.png").stat().st_size > 0


@pytest.mark.slow
def test_an_unknown_stage_is_refused_naming_those_found(pipeline_run, tmp_path, capsys):
    assert main(["--documents", str(pipeline_run), "--stages", "cleanup,nosuch", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: --stages: no nosuch folder under {pipeline_run} "
                                                      "(found: extract, cleanup")


@pytest.mark.slow
def test_a_second_call_reuses_every_run_and_a_lost_run_comes_back_the_same(ablation, pipeline_run, capsys):
    out, first = ablation
    capsys.readouterr()
    assert main(ablate_args(pipeline_run, out)) == 0
    printed = capsys.readouterr().out
    assert printed.count(": reused") == 2 * len(first["variants"]) and ": training" not in printed
    assert json.loads((out / "ablation.json").read_text())["variants"] == first["variants"]

    lost = first["variants"][-1]["runs"][0]
    shutil.rmtree(lost["run"])
    assert main(ablate_args(pipeline_run, out)) == 0
    assert capsys.readouterr().out.count(": training") == 1
    again = json.loads((out / "ablation.json").read_text())["variants"][-1]["runs"][0]
    assert (again["heldout_loss"], again["valid_loss"]) == (lost["heldout_loss"], lost["valid_loss"])


@pytest.mark.slow
def test_the_report_shows_the_ablation_and_not_its_shards_as_stages(ablation, pipeline_run, tmp_path):
    out, result = ablation
    report = collect([pipeline_run, out.parent], tmp_path / "report")
    assert not [s for s in report.stages if s.name == "blend"] and not report.runs
    write_report(report, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Ablation: " in markdown and "held-out loss" in markdown
    for row in result["table"]["rows"]:
        assert "| " + " | ".join(row) + " |" in markdown


def test_the_budget_is_the_smallest_variant_in_whole_batches():
    assert token_budget({"a": 10_000, "b": 5_000}, None, 1024) == 4096
    assert token_budget({"a": 10_000, "b": 5_000}, 2100, 1024) == 2048
    with pytest.raises(AblationError, match="variant b has 5,000 training tokens"):
        token_budget({"a": 10_000, "b": 5_000}, 6000, 1024)
    with pytest.raises(AblationError, match="less than one global batch"):
        token_budget({"a": 10_000, "b": 500}, None, 1024)


def test_bad_input_is_one_line_naming_it(tmp_path, capsys):
    with pytest.raises(AblationError, match="at least two seeds"):
        parse_seeds("7")
    assert main(["--documents", str(tmp_path / "none"), "--out", str(tmp_path / "abl")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --documents {tmp_path / 'none'}: no such folder"
    assert main(["--variant", f"x={tmp_path}", "--out", str(tmp_path / "abl")]) == 2
    assert "is not a finished stage folder" in capsys.readouterr().err


def test_held_out_prose_starts_after_the_gutenberg_header():
    for text in shipped_texts():
        body = text.text()
        assert "Project Gutenberg" not in body[:2000] and "\r" not in body and len(body) > 50_000
    assert body_of("no header\r\nat all") == "no header\nat all"
