"""3D-parallel training on CPU (gloo) equals one process.

Three launches, shared by all tests (run one at a time to bound memory):
- one process: the engine at TP1xPP1xDP1 and the plain PyTorch loop (the reference);
- two simulated nodes (two `torchrun --nnodes 2` launches on 127.0.0.1, 4 ranks each): TP2xPP2xDP2;
- `deepspeed --module` with 4 ranks: TP2xPP1xDP2 then TP1xPP2xDP2, with activation checkpointing and a
  restart from a checkpoint.
Every run trains 12 AdamW steps in fp32 with gradient clipping active and gradient accumulation > 1, the
global batch doubling at step 6 (a ramp-up).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

# Slow tier: multi-rank launches (torchrun two-node, deepspeed 4 ranks).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STEPS = 12
CLIP = 0.5
RESUME_AT = 5
TOLERANCE = 1e-5
LAUNCH_TIMEOUT = 600


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO),
               TORCH_EXTENSIONS_DIR=str(REPO / ".cache" / "torch_extensions"))
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _selftest_args(layouts: str, out: Path, *extra: str) -> list[str]:
    return ["--layouts", layouts, "--steps", str(STEPS), "--clip", str(CLIP), "--out", str(out), *extra]


def _check(processes: list[subprocess.Popen], logs: list[Path]) -> None:
    for process in processes:
        try:
            process.wait(timeout=LAUNCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise
    if any(p.returncode for p in processes):
        tails = "\n".join(log.read_text()[-4000:] for log in logs)
        pytest.fail(f"launch failed:\n{tails}")


def _launch(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("engine")
    results = {}

    out, log = tmp / "one.json", tmp / "one.log"
    _check([_launch([sys.executable, "-m", "trainer.selftest", "--plain", *_selftest_args("1x1x1", out)], log)],
           [log])
    results.update(json.loads(out.read_text())["layouts"])

    out, port = tmp / "nodes.json", _free_port()
    logs = [tmp / f"node{n}.log" for n in range(2)]
    nodes = [_launch([str(BIN / "torchrun"), "--nnodes", "2", "--node-rank", str(n), "--nproc-per-node", "4",
                      "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "trainer.selftest",
                      *_selftest_args("2x2x2", out)], logs[n]) for n in range(2)]
    _check(nodes, logs)
    results.update(json.loads(out.read_text())["layouts"])

    out, log = tmp / "four.json", tmp / "four.log"
    _check([_launch([str(BIN / "deepspeed"), "--num_gpus", "4", "--master_port", str(_free_port()),
                     "--module", "trainer.selftest",
                     *_selftest_args("2x1x2,1x2x2", out, "--activation-checkpoint", "1",
                                     "--resume-at", str(RESUME_AT))], log)], [log])
    results.update(json.loads(out.read_text())["layouts"])
    return results


PARALLEL = ["TP2xPP2xDP2", "TP2xPP1xDP2", "TP1xPP2xDP2"]


def test_one_process_engine_equals_the_plain_pytorch_loop(runs):
    engine, plain = runs["TP1xPP1xDP1"], runs["plain"]
    assert len(engine["losses"]) == STEPS
    assert engine["losses"] == pytest.approx(plain["losses"], abs=TOLERANCE)
    assert engine["grad_norms"] == pytest.approx(plain["grad_norms"], rel=TOLERANCE)
    assert engine["losses"][-1] < engine["losses"][0] - 0.2  # it learns


@pytest.mark.parametrize("layout", PARALLEL)
def test_parallel_layout_gives_the_one_process_losses(runs, layout):
    reference, run = runs["TP1xPP1xDP1"], runs[layout]
    assert len(run["losses"]) == STEPS >= 10
    assert run["losses"] == pytest.approx(reference["losses"], abs=TOLERANCE)
    assert run["grad_norms"] == pytest.approx(reference["grad_norms"], rel=TOLERANCE)
    assert run["eval_loss"] == pytest.approx(reference["eval_loss"], abs=TOLERANCE)
    assert min(run["grad_norms"]) > CLIP  # clipping acted on every step
    assert min(run["grad_accumulation"]) > 1
    assert run["global_batch"] == reference["global_batch"] == [8] * 6 + [16] * 6
    assert run["grad_accumulation"][-1] == 2 * run["grad_accumulation"][0]


def test_padded_vocabulary_does_not_change_the_loss(runs):
    # TP1 pads 300 tokens to 384, TP2 to 512: equal losses mean the padding is out of the softmax
    assert runs["TP1xPP1xDP1"]["padded_vocab"] == 384
    assert runs["TP2xPP1xDP2"]["padded_vocab"] == 512
    assert runs["TP2xPP1xDP2"]["losses"] == pytest.approx(runs["TP1xPP1xDP1"]["losses"], abs=TOLERANCE)


@pytest.mark.parametrize("layout", ["TP2xPP1xDP2", "TP1xPP2xDP2"])
def test_restart_from_checkpoint_repeats_the_losses_exactly(runs, layout):
    run = runs[layout]
    assert run["resumed_from"] == RESUME_AT
    assert run["resumed_losses"] == run["losses"][RESUME_AT:]


def test_two_nodes_keep_tensor_parallel_ranks_inside_a_node(runs):
    placement = runs["TP2xPP2xDP2"]["placement"]
    assert [row["node"] for row in placement] == [0, 0, 0, 0, 1, 1, 1, 1]
    for row in placement:
        # tensor ranks adjacent, then data, then pipeline: the stage is the node here
        assert row["rank"] == row["pp"] * 4 + row["dp"] * 2 + row["tp"]
        assert row["pp"] == row["node"]
    tensor_groups = {}
    for row in placement:
        tensor_groups.setdefault((row["pp"], row["dp"]), set()).add(row["node"])
    assert all(len(nodes) == 1 for nodes in tensor_groups.values())


def _expected_groups(tp: int, pp: int, dp: int, rank: int) -> dict[str, list[int]]:
    def at(p, d, t):
        return p * dp * tp + d * tp + t

    p, d, t = rank // (dp * tp), (rank // tp) % dp, rank % tp
    embedding = sorted({at(0, d, t), at(pp - 1, d, t)}) if p in (0, pp - 1) else []
    return {"tensor": [at(p, d, x) for x in range(tp)], "pipeline": [at(x, d, t) for x in range(pp)],
            "data": [at(p, x, t) for x in range(dp)], "embedding": embedding}


def _communicating(groups: dict[str, list[int]]) -> dict[str, list[int]]:
    """A group of one rank does no communication (DeepSpeed builds no tied group for a single stage)."""
    return {name: sorted(ranks) if len(ranks) > 1 else [] for name, ranks in groups.items()}


@pytest.mark.parametrize("layout,sizes", [("TP2xPP2xDP2", (2, 2, 2)), ("TP2xPP1xDP2", (2, 1, 2)),
                                          ("TP1xPP2xDP2", (1, 2, 2))])
def test_megatron_and_deepspeed_groups_agree(runs, layout, sizes):
    for rank, groups in enumerate(runs[layout]["groups"]):
        expected = _communicating(_expected_groups(*sizes, rank))
        for library in ("megatron", "deepspeed"):
            assert _communicating(groups[library]) == expected, (layout, rank, library)
