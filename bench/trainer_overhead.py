"""What the DeepSpeed engine costs over a plain PyTorch loop, and what 3D parallelism does on this machine.

1. One process, same run: the engine at TP1xPP1xDP1 (DeepSpeed pipeline engine, ZeRO-1, 1F1B schedule)
   against trainer.plain (the same layers, weights, data, AdamW and gradient clipping, no DeepSpeed), their
   steps interleaved so that load on the machine hits both alike. `ratio` = engine over plain throughput,
   the median over steps of the two back-to-back timings, in CPU time of this one-thread process (which
   other jobs on a shared machine do not inflate); `ratio_wall` is the same in wall-clock time, and the
   tokens/s figures are wall-clock medians. `max_abs_loss_diff` shows the two train identically.
2. The same model at TP2xPP2xDP2 (8 processes, torchrun, gloo): tokens/s and each rank's time split between
   compute and communication (time blocked in collectives and transfers, pipeline waits included).

Prints one line per step, then the figures as one JSON object on the last line.
    .venv/bin/python bench/trainer_overhead.py [--steps 8] [--hidden 256] ... [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from trainer.config import BatchConfig, ModelConfig, OptimizerConfig, ParallelConfig, TrainConfig  # noqa: E402
from trainer.engine import build_engine  # noqa: E402
from trainer.parallel.groups import init_distributed  # noqa: E402
from trainer.plain import PlainTrainer  # noqa: E402
from trainer.synthetic import BigramStream  # noqa: E402

README_FIGURES = ("ratio", "ratio_wall")  # the figures bench/_results.py puts in the README table


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--global-batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the one-process comparison")
    p.add_argument("--skip-parallel", action="store_true", help="only the one-process comparison")
    p.add_argument("--layout", default="2x2x2", help="TPxPPxDP layout of the parallel run (one process per rank)")
    p.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = p.parse_args()
    if args.smoke:
        args.layers, args.hidden, args.heads, args.seq, args.vocab = 2, 64, 2, 32, 512  # TP2xPP2xDP2 divides them
        args.micro_batch, args.global_batch, args.steps, args.warmup = 2, 4, 2, 1
        args.layout = "1x2x1"  # two ranks, not eight: pipeline send/receive timed as communication all the same
    return args


def config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(num_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.heads,
                          seq_length=args.seq, vocab_size=args.vocab),
        parallel=ParallelConfig(tensor=1, pipeline=1, activation_checkpoint_interval=0),
        optimizer=OptimizerConfig(lr=1e-3),
        batch=BatchConfig(micro_batch_size=args.micro_batch, global_batch_size=args.global_batch),
        precision="fp32",
    )


def one_process(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    init_distributed()
    cfg = config(args)
    engine = build_engine(cfg, log=lambda _: None)
    plain = PlainTrainer(cfg)
    stream = BigramStream(args.vocab, args.seq, seed=cfg.seed)
    gas = args.global_batch // args.micro_batch
    tokens = args.global_batch * args.seq
    wall = {"engine": [], "plain": []}
    cpu = {"engine": [], "plain": []}
    loss_diffs = []
    for step in range(args.warmup + args.steps):
        batch = list(stream.micro_batches(step * args.global_batch, gas, args.micro_batch))
        order = ("engine", "plain") if step % 2 else ("plain", "engine")
        losses = {}
        for name in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            losses[name] = engine.train_batch(iter(batch)) if name == "engine" else plain.train_batch(batch)
            if step >= args.warmup:
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
        loss_diffs.append(abs(losses["engine"] - losses["plain"]))
        timing = (f"  s (wall/cpu) engine {wall['engine'][-1]:.3f}/{cpu['engine'][-1]:.3f} "
                  f"plain {wall['plain'][-1]:.3f}/{cpu['plain'][-1]:.3f}" if step >= args.warmup else "  (warm-up)")
        print(f"step {step}: loss engine {losses['engine']:.5f} plain {losses['plain']:.5f}{timing}", flush=True)
    engine.ds.destroy()
    dist.destroy_process_group()

    def paired_ratio(seconds: dict) -> float:
        # each step's two timings are taken back to back: their ratio cancels slow changes of load
        return statistics.median(p / e for p, e in zip(seconds["plain"], seconds["engine"]))

    return {"ratio": paired_ratio(cpu), "ratio_wall": paired_ratio(wall),
            "engine_tokens_per_s": tokens / statistics.median(wall["engine"]),
            "plain_tokens_per_s": tokens / statistics.median(wall["plain"]),
            "engine_tokens_per_cpu_s": tokens / statistics.median(cpu["engine"]),
            "plain_tokens_per_cpu_s": tokens / statistics.median(cpu["plain"]),
            "max_abs_loss_diff": max(loss_diffs)}


def parallel(args: argparse.Namespace) -> dict:
    """The --layout (TP2xPP2xDP2) with the same model and batches, through trainer.selftest under torchrun."""
    steps = args.warmup + args.steps
    tp, pp, dp = (int(n) for n in args.layout.split("x"))
    name = f"TP{tp}xPP{pp}xDP{dp}"
    key = name.lower().replace("x", "_")  # tp2_pp2_dp2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "parallel.json"
        # torchrun as a module of this interpreter: the ranks see the same paths as this process, so the
        # JIT-built DeepSpeed op it built is reused, not rebuilt for other include paths
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(tp * pp * dp),
               "-m", "trainer.selftest", "--layouts", args.layout, "--out", str(out), "--time-comm",
               "--steps", str(steps), "--layers", str(args.layers), "--hidden", str(args.hidden),
               "--heads", str(args.heads), "--seq", str(args.seq), "--vocab", str(args.vocab),
               "--micro-batch", str(args.micro_batch), "--global-batch", str(args.global_batch),
               "--double-batch-at", str(steps), "--lr", "1e-3", "--warmup-steps", "1", "--clip", "1.0",
               "--eval-samples", str(2 * args.micro_batch)]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO),
                   TORCH_EXTENSIONS_DIR=os.environ.get("TORCH_EXTENSIONS_DIR",
                                                       str(REPO / ".cache" / "torch_extensions")))
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        run = json.loads(out.read_text())["layouts"][name]
    timed = slice(args.warmup, None)
    # a step ends when its slowest rank ends
    step_seconds = [max(per_rank) for per_rank in zip(*(r[timed] for r in run["step_seconds_by_rank"]))]
    comm = [sum(c[timed]) / sum(s[timed]) for c, s in zip(run["comm_seconds_by_rank"], run["step_seconds_by_rank"])]
    median_step = statistics.median(step_seconds)
    for step, seconds in enumerate(step_seconds):
        print(f"{name} step {args.warmup + step}: {seconds:.3f} s", flush=True)
    return {f"{key}_tokens_per_s": args.global_batch * args.seq / median_step,
            f"{key}_step_seconds": median_step,
            f"{key}_comm_fraction": statistics.mean(comm),
            f"{key}_compute_fraction": 1.0 - statistics.mean(comm),
            f"{key}_comm_fraction_by_rank": [round(c, 3) for c in comm]}


def main() -> None:
    args = parse_args()
    figures = {"model": {"layers": args.layers, "hidden": args.hidden, "heads": args.heads, "seq": args.seq,
                         "vocab": args.vocab},
               "global_batch": args.global_batch, "micro_batch": args.micro_batch, "timed_steps": args.steps,
               "threads": args.threads, "cpu_count": os.cpu_count()}
    if not args.skip_parallel:
        figures.update(parallel(args))
    figures.update(one_process(args))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
