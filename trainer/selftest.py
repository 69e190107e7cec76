"""Train a small GPT on synthetic token streams under one or more 3D layouts and write what happened as JSON.

Run on every rank of a job, e.g.

    torchrun --nproc-per-node 8 -m trainer.selftest --layouts 2x2x2 --out out/selftest.json
    deepspeed --num_gpus 8 --module trainer.selftest --layouts 2x2x2 --out out/selftest.json

Each layout (TPxPPxDP, its product = the world size) trains `--steps` AdamW steps from the same seed on the
same global batches (the batch doubles at `--double-batch-at`, as a ramp-up does), evaluates once and, with
`--resume-at K`, restarts from the checkpoint saved after step K and repeats the remaining steps. Rank 0
writes per-step losses, gradient norms, step times, the rank placement table and every rank's process
groups as seen by megatron-core and by DeepSpeed. The same command with world size 1 and layout 1x1x1 gives
the one-process reference the layouts must match.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

from trainer.config import BatchConfig, ModelConfig, OptimizerConfig, ParallelConfig, TrainConfig
from trainer.engine import TrainerEngine, build_engine
from trainer.parallel.commtime import CommTimer
from trainer.parallel.groups import (
    destroy_megatron_groups,
    init_distributed,
    init_megatron_groups,
    megatron_group_ranks,
)
from trainer.parallel.lifeline import exit_with_launcher
from trainer.parallel.topology import Layout, rows_as_dicts
from trainer.plain import PlainTrainer
from trainer.synthetic import BigramStream, replica_micro_batches

EVAL_FIRST_SAMPLE = 10_000_000  # evaluation samples come from a part of the stream training never reaches


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layouts", default="1x1x1", help="comma-separated TPxPPxDP layouts, run one after the other")
    p.add_argument("--out", required=True, help="JSON file written by rank 0")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--vocab", type=int, default=300)
    p.add_argument("--micro-batch", type=int, default=2)
    p.add_argument("--global-batch", type=int, default=8)
    p.add_argument("--double-batch-at", type=int, default=6, help="step from which the global batch doubles")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--clip", type=float, default=0.5)
    p.add_argument("--activation-checkpoint", type=int, default=0, help="blocks per activation checkpoint")
    p.add_argument("--eval-samples", type=int, default=8)
    p.add_argument("--resume-at", type=int, default=None, help="after the run, resume from step K's checkpoint")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed's
    p.add_argument("--time-comm", action="store_true",
                   help="record each rank's time blocked in communication per step (trainer.parallel.commtime)")
    p.add_argument("--plain", action="store_true",
                   help="one process only: also train the plain PyTorch loop (trainer.plain) on the same batches")
    return p.parse_args(argv)


def train_config(args: argparse.Namespace, layout: Layout, activation_checkpoint: int) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(num_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.heads,
                          seq_length=args.seq, vocab_size=args.vocab, dropout=args.dropout),
        parallel=ParallelConfig(tensor=layout.tensor, pipeline=layout.pipeline,
                                activation_checkpoint_interval=activation_checkpoint),
        optimizer=OptimizerConfig(lr=args.lr, clip_grad=args.clip),
        batch=BatchConfig(micro_batch_size=args.micro_batch, global_batch_size=args.global_batch),
        seed=args.seed,
        precision=args.precision,
    )


def global_batch_at(args: argparse.Namespace, step: int) -> int:
    return args.global_batch * (2 if step >= args.double_batch_at else 1)


def first_sample_of(args: argparse.Namespace, step: int) -> int:
    return sum(global_batch_at(args, s) for s in range(step))


def lr_at(args: argparse.Namespace, step: int) -> float:
    return args.lr * min(1.0, (step + 1) / max(args.warmup_steps, 1))


def run_steps(engine: TrainerEngine, stream: BigramStream, args: argparse.Namespace, steps: range,
              checkpoint: tuple[int, str] | None = None) -> dict:
    record = {"losses": [], "grad_norms": [], "lrs": [], "global_batch": [], "grad_accumulation": [],
              "step_seconds": [], "comm_seconds": []}
    for step in steps:
        batch = global_batch_at(args, step)
        if batch != engine.global_batch_size:
            engine.set_global_batch_size(batch)
        engine.set_lr(lr_at(args, step))
        data = None
        if engine.needs_data:
            data = replica_micro_batches(stream, step_first_sample=first_sample_of(args, step), global_batch=batch,
                                         micro_batch_size=engine.micro_batch_size,
                                         data_parallel_rank=engine.data_parallel_rank,
                                         data_parallel_size=engine.data_parallel_size)
        with CommTimer() if args.time_comm else contextlib.nullcontext() as comm:
            started = time.perf_counter()
            loss = engine.train_batch(data)
            record["step_seconds"].append(time.perf_counter() - started)
        if comm is not None:
            record["comm_seconds"].append(comm.seconds)
        record["losses"].append(loss)
        record["grad_norms"].append(engine.grad_norm)
        record["lrs"].append(engine.lr)
        record["global_batch"].append(engine.global_batch_size)
        record["grad_accumulation"].append(engine.gradient_accumulation_steps)
        if checkpoint is not None and step + 1 == checkpoint[0]:
            engine.save_checkpoint(checkpoint[1], tag=f"step{step + 1}", client_state={"step": step + 1})
    return record


def evaluate(engine: TrainerEngine, stream: BigramStream, args: argparse.Namespace) -> float:
    per_replica = args.eval_samples // engine.data_parallel_size
    data = None
    if engine.needs_data:
        data = stream.micro_batches(EVAL_FIRST_SAMPLE + engine.data_parallel_rank * per_replica,
                                    per_replica // engine.micro_batch_size, engine.micro_batch_size)
    return engine.eval_batch(data, num_micro_batches=per_replica // engine.micro_batch_size)


def close(engine: TrainerEngine) -> None:
    engine.ds.destroy()
    destroy_megatron_groups()
    gc.collect()


def run_layout(layout: Layout, args: argparse.Namespace, stream: BigramStream) -> dict:
    cfg = train_config(args, layout, args.activation_checkpoint)
    engine = build_engine(cfg, global_batch_size=global_batch_at(args, 0))
    checkpoint_dir = None
    if args.resume_at is not None:
        checkpoint_dir = _shared_temp_dir()
    result = run_steps(engine, stream, args, range(args.steps),
                       checkpoint=(args.resume_at, checkpoint_dir) if checkpoint_dir else None)
    result["eval_loss"] = evaluate(engine, stream, args)
    result["padded_vocab"] = engine.shape.padded_vocab
    result["placement"] = rows_as_dicts(engine.placement)
    per_rank: list = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, {"groups": {"megatron": megatron_group_ranks(), "deepspeed": engine.groups},
                                      "step_seconds": result["step_seconds"], "comm_seconds": result["comm_seconds"]})
    result["groups"] = [r["groups"] for r in per_rank]
    result["step_seconds_by_rank"] = [r["step_seconds"] for r in per_rank]
    result["comm_seconds_by_rank"] = [r["comm_seconds"] for r in per_rank]
    close(engine)

    if checkpoint_dir:
        engine = build_engine(cfg, global_batch_size=global_batch_at(args, args.resume_at))
        client_state = engine.load_checkpoint(checkpoint_dir, tag=f"step{args.resume_at}")
        resumed = run_steps(engine, stream, args, range(client_state["step"], args.steps))
        result["resumed_from"] = client_state["step"]
        result["resumed_losses"] = resumed["losses"]
        close(engine)
        dist.barrier()
        if dist.get_rank() == 0:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return result


def run_plain(args: argparse.Namespace, stream: BigramStream) -> dict:
    init_megatron_groups(Layout())
    trainer = PlainTrainer(train_config(args, Layout(), 0))
    record = {"losses": [], "grad_norms": []}
    for step in range(args.steps):
        batch = global_batch_at(args, step)
        trainer.set_lr(lr_at(args, step))
        micro_batches = stream.micro_batches(first_sample_of(args, step), batch // args.micro_batch, args.micro_batch)
        record["losses"].append(trainer.train_batch(micro_batches))
        record["grad_norms"].append(trainer.grad_norm)
    destroy_megatron_groups()
    return record


def _shared_temp_dir() -> str:
    """A checkpoint folder every rank agrees on (one machine, or a shared file system)."""
    path = [tempfile.mkdtemp(prefix="trainer-selftest-") if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(path, src=0)
    return path[0]


def main(argv=None) -> None:
    args = parse_args(argv)
    exit_with_launcher()
    init_distributed()
    stream = BigramStream(args.vocab, args.seq, seed=args.seed)
    results = {}
    for text in args.layouts.split(","):
        layout = Layout.parse(text)
        if layout.world_size != dist.get_world_size():
            raise SystemExit(f"layout {layout} needs {layout.world_size} processes, the job has {dist.get_world_size()}")
        results[str(layout)] = run_layout(layout, args, stream)
    if args.plain:
        if dist.get_world_size() != 1:
            raise SystemExit("--plain runs in a one-process job")
        results["plain"] = run_plain(args, stream)
    if dist.get_rank() == 0:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"args": vars(args), "world_size": dist.get_world_size(),
                                   "torch_threads": torch.get_num_threads(), "layouts": results}, indent=1))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
