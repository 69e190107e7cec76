"""trainer.locate against what a real one-process training run on the shared pipeline run's shards fed
its engine, step by step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blending.__main__ import main as blending_main
from blending.indexed import read_document
from blending.locate import DEFAULT_SEED, DEFAULT_SEQ_LENGTH
from dataprep.schema import doc_id
from tests.helpers import ROOT, launch_env
from trainer.config import TrainConfig
from trainer.locate import locate_step, main

STEPS = 3
# a batch ramp (32, 32, 64) inside the 3 steps, so the steps' sample ranges are not a multiple of one batch
OVERRIDES = {
    "parallel.tensor": 1, "parallel.pipeline": 1, "model.num_layers": 2, "model.hidden_size": 32,
    "model.num_attention_heads": 2, "model.seq_length": 32, "batch.micro_batch_size": 4,
    "batch.global_batch_size": 64, "batch.rampup_start": 32, "batch.rampup_increment": 32, "batch.rampup_tokens": 2048, "train_tokens": 32 * 64 * 20,
    "run.log_interval": 1, "run.eval_interval": 0, "run.eval_samples": 8, "run.save_interval": 0,
}

# The trainer, unchanged, with its feeding function wrapped to keep a copy of every micro-batch it yields.
RECORDING_RUN = """
import sys
import numpy as np
import trainer.data

fed, feed = [], trainer.data.micro_batches

def recording(dataset, batches):
    step = []
    fed.append(step)
    for inputs, (labels, mask) in feed(dataset, batches):
        step.append(np.concatenate([inputs.numpy(), labels.numpy()[:, -1:]], axis=1))
        yield inputs, (labels, mask)

trainer.data.micro_batches = recording
from trainer.train import main
code = main(sys.argv[2:])
np.savez(sys.argv[1], *[np.concatenate(step) for step in fed])
sys.exit(code)
"""


@pytest.fixture(scope="module")
def run(pipeline_shards, tmp_path_factory):
    base = tmp_path_factory.mktemp("lineage-run")
    manifest = pipeline_shards
    out, fed = base / "run", base / "fed.npz"
    sets = [arg for key, value in OVERRIDES.items() for arg in ("--set", f"{key}={value}")]
    done = subprocess.run([sys.executable, "-c", RECORDING_RUN, str(fed), "--preset", "tiny-cpu", "--manifest",
                           str(manifest), "--out", str(out), "--no-save", "--max-steps", str(STEPS), *sets],
                          cwd=ROOT, env=launch_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with np.load(fed) as arrays:
        steps = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    return {"manifest": manifest, "out": out, "fed": steps}


def pieces_tokens(root: Path, documents: list[dict]) -> list[int]:
    return [t for d in documents for t in read_document(root / d["shard"], d["doc"])[slice(*d["token_range"])].tolist()]


@pytest.mark.slow

def from_its_record(document: dict) -> bool:
    """A document's id derives from its WARC record, or from its document's when decontamination split it."""
    from dataprep.decontaminate.rows import piece_doc_id

    parent = doc_id(document["source"], document["origin"])
    return document["doc_id"] == parent or document["doc_id"] in {piece_doc_id(parent, k) for k in range(12)}

def test_trainer_locate_gives_the_documents_each_step_fed(run):
    assert [len(step) for step in run["fed"]] == [32, 32, 64]
    consumed = 0
    for step, fed in enumerate(run["fed"], start=1):
        answer = locate_step(run["out"], step)
        assert answer["samples"] == [consumed, consumed + len(fed)]
        assert [item["sample"] for item in answer["batch"]] == list(range(consumed, consumed + len(fed)))
        for row, item in zip(fed, answer["batch"], strict=True):
            assert pieces_tokens(run["manifest"].parent, item["documents"]) == row.tolist()
            assert all(from_its_record(d) and "warc.gz@" in d["origin"] for d in item["documents"])
        consumed += len(fed)
    # a step the run never reached: its samples follow from the batch schedule in config.json
    assert locate_step(run["out"], STEPS + 1)["samples"] == [consumed, consumed + 64]


@pytest.mark.slow
def test_trainer_locate_cli_and_blending_locate_of_the_runs_stream_agree(run, capsys):
    assert main(["--run", str(run["out"]), "--step", "2", "--json"]) == 0
    batch = json.loads(capsys.readouterr().out)["batch"]
    sample = batch[5]["sample"]
    assert blending_main(["locate", str(run["manifest"]), "--run", str(run["out"]), "--sample", str(sample),
                          "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [{k: d[k] for k in ("doc_id", "shard", "doc", "token_range")} for d in answer["documents"]] == \
           [{k: d[k] for k in ("doc_id", "shard", "doc", "token_range")} for d in batch[5]["documents"]]
    assert answer["stream"]["seq_length"] == 32 and answer["documents"][0]["text"]
    assert main(["--run", str(run["out"]), "--step", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("step 2: samples 32-63 (32 in the global batch)")
    assert f"{batch[0]['documents'][0]['doc_id']} {batch[0]['documents'][0]['shard']}#" in out
    assert main(["--run", str(run["out"]), "--step", "100000"]) == 2


def test_locate_defaults_are_the_trainers():
    assert (DEFAULT_SEQ_LENGTH, DEFAULT_SEED) == (TrainConfig().model.seq_length, TrainConfig().seed)
