"""The training run end to end on CPU: PP2 x DP2 (4 gloo processes) on real shards.

One straight run of 8 steps against a run stopped by SIGTERM after a few steps and resumed from its
checkpoint: the losses must agree bit for bit (fp32), with the batch ramp-up (32 -> 64 -> 96) and the
lr warmup crossing the restart. Three launches in all, shared by the tests of this module, and a fourth
that resumes the finished run with its newest checkpoint truncated. The layout
has the pipeline (two stages reading data, tied embeddings) and ZeRO-1 partitions across replicas;
the engine's own tests restart TP2 x PP2 x DP2 exactly, and `make train` runs that layout.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import build_prose_shards, launch_env
from trainer.checkpoint import complete_checkpoints, newest_loadable, read_state
from trainer.metrics import read_csv

# Slow tier: three 4-process training launches (torch.distributed.run).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
STEPS = 8
# A small model and a schedule whose ramp (32, 32, 32, 64, 64, 96, 96, 96) and warmup span the 8 steps;
# dropout on, so that the resumed run repeats the losses only if the RNG states come back too.
OVERRIDES = {
    "parallel.tensor": 1, "model.dropout": 0.1, "model.num_layers": 2, "model.hidden_size": 32, "model.num_attention_heads": 2, "model.seq_length": 32,
    "batch.micro_batch_size": 4, "batch.global_batch_size": 96, "batch.rampup_start": 32, "batch.rampup_increment": 32,
    "batch.rampup_tokens": 6144,
    "optimizer.lr": 3e-3, "optimizer.warmup_tokens": 4096, "optimizer.decay_tokens": 16384,
    "train_tokens": 16384, "run.log_interval": 1, "run.eval_interval": 4, "run.eval_samples": 16,
    "run.save_interval": 0, "run.keep_checkpoints": 2,
}


def launch_command(manifest: Path, out: Path, *extra: str) -> list[str]:
    sets = [arg for key, value in OVERRIDES.items() for arg in ("--set", f"{key}={value}")]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4",
            "-m", "trainer.train", "--preset", "tiny-cpu", "--manifest", str(manifest), "--out", str(out),
            *sets, *extra]


def run_to_end(manifest: Path, out: Path, *extra: str) -> str:
    done = subprocess.run(launch_command(manifest, out, *extra), cwd=ROOT, env=launch_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def run_until_sigterm(manifest: Path, out: Path) -> str:
    """Start a run, send SIGTERM to the launcher once the first step is logged, wait for it to stop."""
    log = out.with_suffix(".log")
    with log.open("w") as sink:
        proc = subprocess.Popen(launch_command(manifest, out, "--max-steps", "5"), cwd=ROOT, env=launch_env(),
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        metrics, deadline = out / "metrics.csv", time.monotonic() + 240
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:  # header + step 1
                    proc.send_signal(signal.SIGTERM)
                    break
                time.sleep(0.02)
            proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return log.read_text()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("trainer-run")
    manifest = build_prose_shards(base / "shards")
    straight = base / "straight"
    straight_log = run_to_end(manifest, straight)
    resumed = base / "resumed"
    stop_log = run_until_sigterm(manifest, resumed)
    stopped_at = [read_state(c).step for c in complete_checkpoints(resumed / "checkpoints")]
    resume_log = run_to_end(manifest, resumed, "--resume")
    return {"manifest": manifest, "straight": straight, "resumed": resumed, "straight_log": straight_log,
            "stop_log": stop_log, "resume_log": resume_log, "stopped_at": stopped_at}


def test_sigterm_checkpoints_and_resume_is_bit_exact(runs):
    assert "stopped by SIGTERM" in runs["stop_log"], runs["stop_log"][-3000:]
    assert len(runs["stopped_at"]) == 1, runs["stopped_at"]
    stopped = runs["stopped_at"][0]
    assert 1 <= stopped < 5, f"stopped after step {stopped}"
    assert f"resuming at step {stopped}" in runs["resume_log"]
    assert "schedules changed" not in runs["resume_log"]

    straight = read_csv(runs["straight"] / "metrics.csv")
    resumed = read_csv(runs["resumed"] / "metrics.csv")
    assert [int(r["step"]) for r in straight] == list(range(1, STEPS + 1))
    assert [int(r["step"]) for r in resumed] == list(range(1, STEPS + 1))
    for column in ("loss", "lr", "global_batch", "tokens", "samples"):
        assert [r[column] for r in resumed] == [r[column] for r in straight], column  # text: bit for bit
    batches = [int(r["global_batch"]) for r in straight]
    assert batches == [32, 32, 32, 64, 64, 96, 96, 96]
    assert batches[stopped - 1] < 96, "the ramp must still be going at the restart"
    assert read_csv(runs["resumed"] / "valid.csv") == read_csv(runs["straight"] / "valid.csv")


def test_training_learns_and_beats_the_unigram_model(runs):
    losses = [float(r["loss"]) for r in read_csv(runs["straight"] / "metrics.csv")]
    assert losses[-1] < losses[0] - 0.3
    summary = json.loads((runs["straight"] / "summary.json").read_text())
    assert summary["status"] == "done" and summary["steps"] == STEPS and summary["tokens"] == 16384
    assert summary["unigram_val_loss"] > 0 and summary["val_loss"] == float(
        read_csv(runs["straight"] / "valid.csv")[-1]["val_loss"])


def test_records_and_checkpoints_of_a_run(runs):
    out = runs["straight"]
    assert (out / "loss.png").stat().st_size > 10_000
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert [int(r["step"]) for r in read_csv(out / "valid.csv")] == [4, 8]
    log = runs["straight_log"]
    assert "tok/s" in log and "ETA" in log and "TFLOP/s" in log and "validation loss" in log
    # Checkpoints: the newest K complete ones, `latest` naming the newest, nothing partial left.
    resumed = runs["resumed"] / "checkpoints"
    names = sorted(p.name for p in resumed.iterdir() if not p.name.endswith(".py"))  # DeepSpeed's scripts
    assert names == sorted([f"step_{runs['stopped_at'][0]:08d}", "step_00000008", "latest"])
    assert (resumed / "latest").read_text() == "step_00000008"
    final = read_state(resumed / "step_00000008")
    assert (final.step, final.consumed_samples, final.consumed_tokens) == (STEPS, 512, 16384)
    last_row = read_csv(runs["resumed"] / "metrics.csv")[-1]
    assert final.scheduler == {"lr": float(last_row["lr"]), "global_batch": 96}
    assert len(list((resumed / "step_00000008" / "rng").glob("rank_*.pt"))) == 4
    assert final.config["model"]["hidden_size"] == 32 and len(final.manifest_sha256) == 64


def test_resume_refuses_another_manifest_or_stream(runs, tmp_path, capsys, monkeypatch):
    from trainer.train import main

    monkeypatch.setenv("WORLD_SIZE", "4")  # checked in this process, before any launch would happen
    args = ["--manifest", str(runs["manifest"]), "--out", str(runs["resumed"])]
    sets = [arg for key, value in OVERRIDES.items() for arg in ("--set", f"{key}={value}")]
    # Without --resume a folder with checkpoints is not overwritten.
    assert main(args + sets) == 2
    assert "pass --resume" in capsys.readouterr().err
    # Another stream (seed) cannot continue this run's checkpoint.
    assert main(args + sets + ["--resume", "--set", "seed=7"]) == 2
    assert "seed was 1234, now 7" in capsys.readouterr().err
    # Nor can another data-parallel size (ZeRO-1 partitions), refused before any process starts.
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(args + sets + ["--resume"]) == 2
    assert "written with data parallelism 2, this launch has 1" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "4")
    # Nor can other data.
    other = build_prose_shards(tmp_path / "other", weights={"shakespeare": 0.5, "frankenstein": 0.5})
    assert main(["--manifest", str(other), "--out", str(runs["resumed"]), *sets, "--resume"]) == 2
    assert "another manifest" in capsys.readouterr().err


def test_a_finished_run_resumed_is_reused_not_trained_again(runs, capsys, monkeypatch):
    from trainer.train import main

    monkeypatch.setenv("WORLD_SIZE", "4")
    sets = [arg for key, value in OVERRIDES.items() for arg in ("--set", f"{key}={value}")]
    before = (runs["straight"] / "metrics.csv").read_bytes()
    assert main(["--manifest", str(runs["manifest"]), "--out", str(runs["straight"]), *sets, "--resume"]) == 0
    assert "complete (all 16,384 tokens trained); nothing to do" in capsys.readouterr().out
    assert (runs["straight"] / "metrics.csv").read_bytes() == before


def test_resume_skips_a_truncated_newest_checkpoint_and_repeats_the_run_from_the_previous_one(runs, tmp_path):
    run = tmp_path / "resumed-again"
    shutil.copytree(runs["resumed"], run)
    stopped = runs["stopped_at"][0]
    newest = run / "checkpoints" / "step_00000008"
    damaged = sorted(newest.glob("layer_*-model_states.pt"))[-1]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a disk that filled up

    log = run_to_end(runs["manifest"], run, "--resume")
    skipped = [line for line in log.splitlines() if line.startswith("skipping checkpoint")]
    assert len(skipped) == 1 and skipped[0].startswith(f"skipping checkpoint step_00000008: {damaged} cannot be read")
    assert f"resuming at step {stopped}" in log
    straight = read_csv(runs["straight"] / "metrics.csv")
    again = read_csv(run / "metrics.csv")
    assert [int(r["step"]) for r in again] == list(range(1, STEPS + 1))
    for column in ("loss", "lr", "global_batch", "tokens", "samples"):
        assert [r[column] for r in again] == [r[column] for r in straight], column  # text: bit for bit
    assert newest_loadable(run / "checkpoints", print) == newest  # saved again, whole
