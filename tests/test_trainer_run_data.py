"""The run's data side without launching training: shards from real text through blending's writer,
refusal of bad shards before training, and the sample stream's independence of the data-parallel size."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from blending.tokenizer import train_bpe
from tests.helpers import build_prose_shards, prose_documents
from trainer import schedules
from trainer.data import micro_batch_sample_ids, micro_batches
from trainer.presets import get_preset


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return build_prose_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def process_group():
    """A one-process gloo group: megatron-core's dataset builders expect one, as in the trainer."""
    import socket

    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def copy_shards(manifest: Path, dest: Path) -> Path:
    shutil.copytree(manifest.parent, dest)
    return dest / manifest.name


def refuse(argv: list[str], capsys) -> str:
    """Run the trainer's entry point; it must stop before training (exit code 2) and say why."""
    from trainer.train import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_corrupt_shard_is_refused_naming_the_file(shards, tmp_path, capsys):
    manifest = copy_shards(shards, tmp_path / "data")
    bin_path = manifest.parent / "frankenstein" / "train_00000.bin"
    data = bytearray(bin_path.read_bytes())
    data[100] ^= 0xFF  # same size: only the hash can tell
    bin_path.write_bytes(bytes(data))
    err = refuse(["--manifest", str(manifest), "--out", str(tmp_path / "run"), "--verify"], capsys)
    assert str(bin_path) in err and "sha256" in err
    bin_path.write_bytes(bytes(data[:-2]))  # truncated: the size check at every start sees it
    err = refuse(["--manifest", str(manifest), "--out", str(tmp_path / "run")], capsys)
    assert str(bin_path) in err and "bytes" in err
    assert not (tmp_path / "run").exists()


def test_a_flipped_bit_stops_training_before_step_1_without_verify(shards, tmp_path, capsys, monkeypatch):
    import os

    from blending.manifest import load_manifest
    from blending.verified import verify_manifest

    monkeypatch.setenv("MTNLG_VERIFIED_RECORD", str(tmp_path / "record.json"))
    manifest = copy_shards(shards, tmp_path / "data")
    first = verify_manifest(load_manifest(manifest))
    assert first.hashed == 9 and first.recorded == 0  # the tokenizer and 4 shards' .bin and .idx
    again = verify_manifest(load_manifest(manifest))
    assert again.hashed == 0 and again.recorded == 9  # unchanged since checked: no hashing
    bin_path = manifest.parent / "shakespeare" / "train_00000.bin"
    before = os.stat(bin_path)
    data = bytearray(bin_path.read_bytes())
    data[7] ^= 0x01
    bin_path.write_bytes(bytes(data))
    os.utime(bin_path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size and mtime: only ctime moved
    err = refuse(["--manifest", str(manifest), "--out", str(tmp_path / "run")], capsys)
    assert str(bin_path) in err and "sha256" in err
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "metrics.csv").exists()
    assert verify_manifest(load_manifest(shards)).hashed == 9  # a copy elsewhere is other files


def test_missing_shard_is_refused_naming_the_file(shards, tmp_path, capsys):
    manifest = copy_shards(shards, tmp_path / "data")
    idx_path = manifest.parent / "shakespeare" / "valid_00000.idx"
    idx_path.unlink()
    err = refuse(["--manifest", str(manifest), "--out", str(tmp_path / "run")], capsys)
    assert str(idx_path) in err and "missing" in err


def test_tokenizer_mismatch_is_refused_naming_the_file(shards, tmp_path, capsys):
    manifest = copy_shards(shards, tmp_path / "data")
    # A tokenizer other than the one the shards were made with.
    other = train_bpe(prose_documents("frankenstein"), vocab_size=400)
    other_path = tmp_path / "other-tokenizer.json"
    other.save(str(other_path))
    err = refuse(["--manifest", str(manifest), "--out", str(tmp_path / "run"), "--tokenizer", str(other_path)], capsys)
    assert str(other_path) in err and "tokenizer" in err
    # The manifest's tokenizer file replaced: --verify finds its hash changed.
    shutil.copy(other_path, manifest.parent / "tokenizer.json")
    err = refuse(["--manifest", str(manifest), "--out", str(tmp_path / "run"), "--verify"], capsys)
    assert str(manifest.parent / "tokenizer.json") in err
    # A model configured for another vocabulary than the tokenizer's.
    err = refuse(["--manifest", str(shards), "--out", str(tmp_path / "run"), "--set", "model.vocab_size=50257"], capsys)
    assert "vocab_size=50257" in err and str(shards) in err


def test_same_samples_reach_the_model_with_dp1_and_dp2(shards, process_group):
    """Per step, the micro-batches of DP 1 and those of the DP 2 replicas hold the same samples (the same
    tokens), through the same dataset and dealing code the trainer runs."""
    from blending.reader import build_gpt_datasets, load_manifest

    cfg = get_preset("tiny-cpu")
    cfg.model.seq_length, cfg.batch.micro_batch_size, cfg.train_tokens = 32, 4, 32 * 400
    cfg.batch.rampup_start, cfg.batch.rampup_increment, cfg.batch.global_batch_size = 32, 32, 64
    cfg.batch.rampup_tokens = 32 * 160
    train_ds, _ = build_gpt_datasets(load_manifest(shards), seq_length=32,
                                     num_samples={"train": schedules.total_samples(cfg), "valid": 16}, seed=cfg.seed)

    def step_tokens(consumed: int, gbs: int, dp: int, rank: int) -> list[np.ndarray]:
        ids = micro_batch_sample_ids(consumed, gbs, cfg.batch.micro_batch_size, dp, rank)
        return [inputs.numpy() for inputs, _ in micro_batches(train_ds, ids)]

    consumed, sizes = 0, set()
    for index in range(6):
        plan1 = schedules.plan_step(index, consumed, cfg, data_parallel_size=1)
        plan2 = schedules.plan_step(index, consumed, cfg, data_parallel_size=2)
        assert plan1.global_batch == plan2.global_batch and plan1.micro_batches == 2 * plan2.micro_batches
        sizes.add(plan1.global_batch)
        one = np.concatenate(step_tokens(consumed, plan1.global_batch, 1, 0))
        replicas = [step_tokens(consumed, plan2.global_batch, 2, rank) for rank in range(2)]
        assert all(len(r) == plan2.micro_batches for r in replicas)
        # Megatron's dealing: chunk k of micro_batch x DP samples is split between the replicas in order.
        two = np.concatenate([mb for pair in zip(*replicas, strict=True) for mb in pair])
        assert np.array_equal(one, two)
        assert len({row.tobytes() for row in one}) == len(one)  # distinct samples within a step
        consumed += plan1.global_batch
    assert sizes == {32, 64}  # the ramp was crossed


def test_refused_config_names_the_problem(shards, tmp_path, capsys):
    one_process = ["--set", "parallel.tensor=1", "--set", "parallel.pipeline=1"]
    err = refuse(["--manifest", str(shards), "--out", str(tmp_path / "run"), "--set", "batch.rampup_increment=30",
                  *one_process], capsys)
    assert "rampup_increment=30" in err
    err = refuse(["--manifest", str(shards), "--out", str(tmp_path / "run")], capsys)
    assert "world size 1 is not a multiple of TP 2 x PP 2" in err
    json.loads(shards.read_text())  # the manifest itself is untouched


def test_unigram_baseline_is_the_blends_token_distribution(shards, process_group):
    """The baseline's probabilities match counts taken through megatron-core's own shard reader."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from blending.reader import build_gpt_datasets, load_manifest
    from trainer.data import blend_unigram_probs, unigram_cross_entropy

    manifest = load_manifest(shards)
    probs = blend_unigram_probs(manifest)
    expected = np.zeros(manifest.vocab_size)
    for source in manifest.sources.values():
        counts = np.zeros(manifest.vocab_size)
        for shard in source.train:
            data = IndexedDataset(shard.prefix)
            for i in range(len(data)):
                counts += np.bincount(data[i], minlength=manifest.vocab_size)
        expected += source.weight * (counts + 1) / (counts.sum() + manifest.vocab_size)
    assert np.allclose(probs, expected, rtol=1e-12) and probs.sum() == pytest.approx(1.0)
    _, valid = build_gpt_datasets(manifest, seq_length=32, num_samples={"train": 8, "valid": 16}, seed=1)
    labels = np.concatenate([np.asarray(valid[i]["labels"]) for i in range(16)])
    assert unigram_cross_entropy(probs, valid, 16) == pytest.approx(-np.log(probs[labels]).mean(), rel=1e-9)
    # Sanity: far below a uniform guess over the vocabulary, as any text is.
    assert unigram_cross_entropy(probs, valid, 16) < np.log(manifest.vocab_size) - 0.5
