"""Checkpoints are read as data only: a crafted pickle is refused and runs nothing; a resume starts from the
newest checkpoint whose files read, and never skips past a crafted one."""

from __future__ import annotations

import json
import os
import pickletools
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT, build_prose_shards, launch_env
from trainer.checkpoint import CheckpointError, UnsafeCheckpointError, newest_loadable
from trainer.checkpoint.data_only import load_data
from trainer.config import to_dict
from trainer.presets import get_preset

MARKER = "PWNED"


class _RunsAShellCommand:
    """What an attacker pickles: unpickling it calls os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_crafted(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"embedding.weight": torch.zeros(2, 2), "extra": _RunsAShellCommand(marker)}, path)
    return path


def write_checkpoint(ckpt: Path, step: int = 2, crafted_marker: Path | None = None) -> Path:
    """A one-process checkpoint's files (TP1 x PP1 x DP1) with the trainer's state; with `crafted_marker`,
    its first layer file is a crafted pickle."""
    cfg = get_preset("tiny-cpu")
    cfg.parallel.tensor, cfg.parallel.pipeline = 1, 1
    ckpt.mkdir(parents=True)
    layer = ckpt / "layer_00-model_00-model_states.pt"
    if crafted_marker is None:
        torch.save({"word.weight": torch.randn(4, 2)}, layer)
    else:
        write_crafted(layer, crafted_marker)
    torch.save({"module": None, "global_steps": step, "ds_version": "0.19.8"}, ckpt / "mp_rank_00_model_states.pt")
    (ckpt / "rng").mkdir()
    torch.save({"torch": torch.get_rng_state(), "python": (3, tuple(range(625)), None)}, ckpt / "rng" / "rank_00000.pt")
    state = {"step": step, "consumed_samples": 8 * step, "consumed_tokens": 256 * step, "config": to_dict(cfg),
             "manifest_sha256": "0" * 64, "data_parallel": 1}
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    return ckpt


def test_the_crafted_file_would_run_its_command_but_is_refused(tmp_path):
    marker = tmp_path / MARKER
    crafted = write_crafted(tmp_path / "layer_00-model_00-model_states.pt", marker)
    with pytest.raises(UnsafeCheckpointError) as refused:
        load_data(crafted)
    assert str(crafted) in str(refused.value) and "system" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not marker.exists()
    # the craft is real: its pickle calls os.system with the command (read with pickletools, never run)
    with zipfile.ZipFile(crafted) as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    strings = [arg for _, arg, _ in pickletools.genops(pickled) if isinstance(arg, str)]
    assert any(s.split()[-1] == "system" for s in strings if s) and f"touch {marker}" in strings


def test_a_truncated_file_is_unreadable_not_unsafe(tmp_path):
    path = tmp_path / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    torch.save({"exp_avg": torch.randn(1000)}, path)
    path.write_bytes(path.read_bytes()[:-700])
    with pytest.raises(CheckpointError) as unreadable:
        load_data(path, mmap=True)
    assert not isinstance(unreadable.value, UnsafeCheckpointError)
    assert str(path) in str(unreadable.value)


def test_resume_skips_an_unreadable_newest_checkpoint_and_says_why(tmp_path):
    root = tmp_path / "checkpoints"
    write_checkpoint(root / "step_00000002", step=2)
    newest = write_checkpoint(root / "step_00000004", step=4)
    layer = newest / "layer_00-model_00-model_states.pt"
    layer.write_bytes(layer.read_bytes()[:100])
    lines = []
    assert newest_loadable(root, lines.append) == root / "step_00000002"
    assert len(lines) == 1 and lines[0].startswith("skipping checkpoint step_00000004: ") and str(layer) in lines[0]

    (newest / "rng" / "rank_00000.pt").unlink()  # a rank's file missing: incomplete too
    layer.unlink()
    lines.clear()
    assert newest_loadable(root, lines.append) == root / "step_00000002"
    assert "rank_00000.pt is missing" in lines[0]


def test_resume_never_skips_past_a_crafted_checkpoint(tmp_path):
    marker = tmp_path / MARKER
    root = tmp_path / "checkpoints"
    write_checkpoint(root / "step_00000002", step=2)
    write_checkpoint(root / "step_00000004", step=4, crafted_marker=marker)
    with pytest.raises(UnsafeCheckpointError, match="step_00000004/layer_00-model_00-model_states.pt"):
        newest_loadable(root, print)
    assert not marker.exists()


def test_no_checkpoint_that_reads_is_an_error_naming_the_newest(tmp_path):
    root = tmp_path / "checkpoints"
    ckpt = write_checkpoint(root / "step_00000002", step=2)
    (ckpt / "mp_rank_00_model_states.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="none of the 1 checkpoints .*/mp_rank_00_model_states.pt cannot be read"):
        newest_loadable(root, lambda line: None)


@pytest.fixture(scope="module")
def crafted_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("crafted")
    manifest = build_prose_shards(base / "shards")
    ckpt = write_checkpoint(base / "run" / "checkpoints" / "step_00000002", crafted_marker=base / MARKER)
    (ckpt / "tokenizer.json").write_bytes((manifest.parent / "tokenizer.json").read_bytes())
    return {"base": base, "manifest": manifest, "run": base / "run", "ckpt": ckpt}


CLIS = {
    "train --resume": lambda r: ["trainer.train", "--manifest", str(r["manifest"]), "--out", str(r["run"]), "--resume",
                                 "--set", "parallel.tensor=1", "--set", "parallel.pipeline=1"],
    "evaluate": lambda r: ["trainer.evaluate", "--checkpoint", str(r["run"]), "--tasks", "piqa", "--limit", "2",
                           "--out", str(r["base"] / "eval.json")],
    "export_hf": lambda r: ["trainer.export_hf", "--checkpoint", str(r["ckpt"]), "--out", str(r["base"] / "hf")],
    "reshard": lambda r: ["trainer.reshard", "--checkpoint", str(r["ckpt"]), "--tp", "2", "--pp", "1",
                          "--out", str(r["base"] / "resharded")],
}


@pytest.mark.slow  # one Python process per command line
@pytest.mark.parametrize("cli", sorted(CLIS))
def test_every_command_refuses_a_crafted_checkpoint_in_one_line(crafted_run, cli):
    done = subprocess.run([sys.executable, "-m", *CLIS[cli](crafted_run)], cwd=ROOT, env=launch_env(),
                          capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1 and "layer_00-model_00-model_states.pt: refused" in errors[0], done.stderr[-3000:]
    assert not (crafted_run["base"] / MARKER).exists()
    assert not (crafted_run["base"] / "hf").exists() and not (crafted_run["base"] / "resharded").exists()


@pytest.mark.slow  # builds a DeepSpeed engine in this process
def test_deepspeeds_own_checkpoint_loading_refuses_a_crafted_file(tmp_path, monkeypatch):
    from deepspeed.comm import comm as ds_comm

    from trainer.engine import build_engine
    from trainer.parallel.groups import release_process_groups

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name, value in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                            MASTER_PORT=str(port)).items():
        monkeypatch.setenv(name, value)
    cfg = get_preset("tiny-cpu")
    cfg.parallel.tensor, cfg.parallel.pipeline = 1, 1
    cfg.model.num_layers, cfg.model.hidden_size, cfg.model.num_attention_heads, cfg.model.vocab_size = 2, 32, 2, 256
    marker = tmp_path / MARKER
    try:
        engine = build_engine(cfg, global_batch_size=cfg.batch.micro_batch_size, backend="gloo", log=lambda _: None)
        engine.save_checkpoint(str(tmp_path), tag="step_00000001")
        engine.load_checkpoint(str(tmp_path), tag="step_00000001")  # DeepSpeed's files read as data
        write_crafted(tmp_path / "step_00000001" / "layer_00-model_00-model_states.pt", marker)
        with pytest.raises(UnsafeCheckpointError, match="layer_00-model_00-model_states.pt: refused"):
            engine.load_checkpoint(str(tmp_path), tag="step_00000001")
        assert not marker.exists()
    finally:
        release_process_groups()
        ds_comm.cdb = None  # DeepSpeed's handle on the destroyed group; a later job must start afresh
