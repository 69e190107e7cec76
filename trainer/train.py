"""Train a GPT from a blend manifest: the user's entry point.

    deepspeed --module trainer.train --preset tiny-cpu --manifest M --out RUN [--resume] [--verify]
    torchrun --nproc-per-node 8 -m trainer.train --preset tiny-cpu --manifest M --out RUN
    python -m trainer.train --preset 1b --manifest M --out RUN        # one process (one GPU)

The run reads only the manifest and its shards. Before any training it checks every shard's size, the
sha256 of every file this machine has not checked since it last changed (blending/verified.py;
`--verify`: all of them again), the tokenizer's hash and the vocabulary size against the model; a bad or
mismatched file stops the run with a message naming it. It then follows the token-based recipe of
trainer.config, writes a checkpoint every `run.save_interval` steps and on SIGTERM/SIGINT (at the end
of the step in flight), and `--resume` continues from the newest complete checkpoint exactly as if the
run had never stopped (one whose files do not read is skipped, saying why; checkpoints are read as data
only, trainer.checkpoint.data_only). Progress: a log line per `run.log_interval` steps, RUN/metrics.csv,
RUN/valid.csv, RUN/tensorboard/ and RUN/loss.png.

Downstream tasks: `--eval-tasks lambada,piqa` scores the final checkpoint (and, with `--eval-every N`,
every N-th step's) with trainer.evaluate, in the background (trainer.downstream), into
RUN/eval/step_N.json and prints the table. RUN/run.lock
keeps a second run off a live run's folder; ranks exit when their launcher dies.

Stopping: `--max-steps`, `--exit-duration-mins` and `--target-val-loss` (a number, `unigram` for
the unigram model of the blend, measured on the same validation samples, or `unigram-15%` for 15%
below it) stop with a checkpoint. A signal is acted on at the end of the step in flight; torchrun
and the deepspeed launcher give their workers about 30 s after forwarding it, so for models whose
checkpoint takes longer, signal the workers themselves (as SLURM does) or rely on the last periodic
checkpoint, which a killed save never damages.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from blending.hashing import sha256_file
from blending.user_errors import reports_bad_input
from trainer import checkpoint, runlock, schedules
from trainer.config import (
    STREAM_FIELDS,
    ConfigError,
    TrainConfig,
    apply_override,
    data_parallel_size,
    get_field,
    load_overrides_file,
    resolve_precision,
    to_dict,
    validate,
)
from trainer.presets import PRESETS, get_preset


class RunError(RuntimeError):
    """The run cannot start: bad data, a mismatched checkpoint or an impossible config."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainer.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny-cpu")
    parser.add_argument("--manifest", required=True, help="blend manifest.json written by blending")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, metrics, loss.png")
    parser.add_argument("--config", help="JSON/YAML file of config values (nested like TrainConfig)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set optimizer.lr=1e-3 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint that reads")
    parser.add_argument("--verify", action="store_true", help="hash every shard again, even those this machine "
                        "checked before, and check the counts inside every .idx")
    parser.add_argument("--tokenizer", help="tokenizer file the run must use: refused if it is not the manifest's")
    parser.add_argument("--max-steps", type=int, help="stop (with a checkpoint) once this many steps are done")
    parser.add_argument("--exit-duration-mins", type=float,
                        help="stop (with a checkpoint) at the first step end after this many minutes")
    parser.add_argument("--no-save", action="store_true", help="write no checkpoint at all (benchmarks)")
    parser.add_argument("--target-val-loss", help="stop once the validation loss is below this number, "
                        "below the unigram model of the data with 'unigram', or P%% below it with 'unigram-P%%'")
    parser.add_argument("--peak-tflops", type=float, help="peak TFLOP/s of one device, for MFU on unknown GPUs")
    parser.add_argument("--eval-tasks", help="downstream tasks (trainer.evaluate) to score the final checkpoint on, "
                        "e.g. lambada,piqa; results in RUN/eval/step_N.json")
    parser.add_argument("--eval-every", type=int, help="also checkpoint and score the tasks every N steps")
    parser.add_argument("--eval-shots", default="0", help="shot counts for --eval-tasks (default 0)")
    parser.add_argument("--eval-limit", type=int, help="first N items of each task only")
    parser.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)  # deepspeed launcher
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> TrainConfig:
    cfg = get_preset(args.preset)
    if args.config:
        load_overrides_file(cfg, args.config)
    for assignment in args.overrides:
        apply_override(cfg, assignment)
    return cfg


# --- data checks, before any process group or model exists ---------------------------------------


def verify_shards(manifest, hashed: bool) -> None:
    """Training never reads a file whose sha256 this machine has not checked since it last changed."""
    from blending.reader import ManifestError
    from blending.verified import verify_manifest

    try:
        print(verify_manifest(manifest, force=hashed, hashed=hashed).line(), flush=True)
    except ManifestError as error:
        raise RunError(f"refusing to train: {error}") from error


def open_manifest(args: argparse.Namespace, cfg: TrainConfig, verify_hashes: bool):
    """Load and check the manifest; set the model's vocabulary from it. Raises RunError naming the file."""
    from blending.reader import ManifestError, load_manifest

    try:
        manifest = load_manifest(args.manifest, verify_hashes=verify_hashes)
    except ManifestError as error:
        raise RunError(f"refusing to train: {error}") from error
    except FileNotFoundError as error:
        raise RunError(f"refusing to train: manifest {args.manifest} not found") from error
    if args.tokenizer and not os.path.isfile(args.tokenizer):
        raise RunError(f"refusing to train: tokenizer {args.tokenizer} not found")
    digest = sha256_file(args.tokenizer) if args.tokenizer else None
    if digest and digest != manifest.tokenizer_sha256:
        raise RunError(
            f"refusing to train: tokenizer {args.tokenizer} (sha256 {digest[:12]}) is not the "
            f"one the shards of {args.manifest} were made with ({manifest.tokenizer_path}, sha256 "
            f"{manifest.tokenizer_sha256[:12]})"
        )
    vocab_overridden = any(a.split("=", 1)[0].strip() == "model.vocab_size" for a in args.overrides)
    if vocab_overridden and cfg.model.vocab_size != manifest.vocab_size:
        raise RunError(
            f"refusing to train: model.vocab_size={cfg.model.vocab_size} but the tokenizer of {args.manifest} "
            f"has {manifest.vocab_size} tokens"
        )
    cfg.model.vocab_size = manifest.vocab_size
    return manifest


def check_resume_compatible(saved: checkpoint.TrainerState, cfg: TrainConfig, manifest_sha256: str,
                            where: Path, data_parallel: int) -> None:
    """A checkpoint continues only the stream it belongs to: same data, same stream-defining config,
    and the layout its per-rank files were written for (the sample stream itself would continue the
    same with another DP size, but ZeRO-1's optimizer partitions are cut for the saved one)."""
    if saved.manifest_sha256 != manifest_sha256:
        raise RunError(f"refusing to resume from {where}: it was trained on another manifest "
                       f"(sha256 {saved.manifest_sha256[:12]}, this one {manifest_sha256[:12]})")
    saved_cfg = _as_namespace(saved.config)
    for name in STREAM_FIELDS + ("model.num_layers", "model.hidden_size", "model.vocab_size"):
        old, new = get_field(saved_cfg, name), get_field(cfg, name)
        if old != new:
            raise RunError(f"refusing to resume from {where}: {name} was {old}, now {new}")
    tp, pp = cfg.parallel.tensor, cfg.parallel.pipeline
    reshard = (f"convert it first: python -m trainer.reshard --checkpoint {where} --tp {tp} --pp {pp} "
               f"--out NEW_RUN_DIR, then resume with --out NEW_RUN_DIR")
    saved_layout = (get_field(saved_cfg, "parallel.tensor"), get_field(saved_cfg, "parallel.pipeline"))
    if saved_layout != (tp, pp):
        raise RunError(f"refusing to resume from {where}: it was written for TP{saved_layout[0]} x PP{saved_layout[1]}, "
                       f"this launch is TP{tp} x PP{pp}; {reshard}")
    if saved.data_parallel is not None and saved.data_parallel != data_parallel:
        raise RunError(f"refusing to resume from {where}: written with data parallelism {saved.data_parallel}, "
                       f"this launch has {data_parallel}: ZeRO-1 optimizer partitions are cut per DP rank; launch "
                       f"{saved.data_parallel * tp * pp} processes, or {reshard} (any DP size resumes it)")


class _as_namespace:
    def __init__(self, data: dict):
        for key, value in data.items():
            setattr(self, key, _as_namespace(value) if isinstance(value, dict) else value)


# --- the distributed part --------------------------------------------------------------------------


class StopRequest:
    """SIGTERM/SIGINT ask the run to checkpoint and stop at the end of the step in flight; a second
    SIGINT stops at once."""

    def __init__(self):
        self.signal_name: str | None = None
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name


@dataclass
class Progress:
    step: int = 0
    consumed_samples: int = 0

    def tokens(self, seq: int) -> int:
        return self.consumed_samples * seq


def any_rank(*flags: bool) -> list[bool]:
    """Each flag, true on every rank when it is true on at least one (a signal may reach only some
    ranks, clocks differ): every rank then takes the same decision."""
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([1.0 if flag else 0.0 for flag in flags], device=_comm_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(value > 0) for value in tensor.tolist()]


def _comm_device():
    import torch
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_value(value, src: int = 0):
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def target_loss(spec: str, unigram: float) -> float:
    """The validation loss `--target-val-loss` asks for: a number, `unigram` (the unigram model's loss on
    the same samples) or `unigram-P%` (P percent below it: a model that only learnt word frequencies
    cannot get there)."""
    text = spec.strip().replace(" ", "")
    if text == "unigram":
        return unigram
    if text.startswith("unigram-") and text.endswith("%"):
        try:
            percent = float(text[len("unigram-"):-1])
        except ValueError:
            percent = -1.0
        if 0 <= percent < 100:
            return unigram * (1 - percent / 100)
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--target-val-loss {spec!r}: give a number, 'unigram' or 'unigram-P%' "
                          "(e.g. unigram-15%)") from None


def unigram_baseline(manifest, valid_ds, cfg: TrainConfig) -> float:
    """Cross-entropy of the blend's unigram model on the validation samples the model is scored on."""
    from trainer.data import blend_unigram_probs, unigram_cross_entropy

    return unigram_cross_entropy(blend_unigram_probs(manifest), valid_ds, cfg.run.eval_samples)


def quiet_known_warnings() -> None:
    """Warnings that every rank repeats at every step and that say nothing about this run."""
    for pattern in (r"c10d::broadcast_: an autograd kernel", r".*CUDA_DEVICE_MAX_CONNECTIONS",
                    r".*all_gather_into_tensor.* is deprecated", r"Transformer Engine and Apex are not installed"):
        warnings.filterwarnings("ignore", message=pattern)


@reports_bad_input("python -m trainer.train")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_known_warnings()
    try:
        return run(args)
    except (RunError, ConfigError, checkpoint.CheckpointError, runlock.RunLocked, runlock.RunLockLost) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2


def run(args: argparse.Namespace) -> int:
    from trainer.parallel.lifeline import exit_with_launcher

    exit_with_launcher()  # a SIGKILLed launcher must not leave this rank training
    cfg = build_config(args)
    if args.target_val_loss:
        target_loss(args.target_val_loss, 1.0)  # a malformed target stops the run before it starts
    # Sizes on every rank (cheap); hashes once per node, of the files this machine has not checked since
    # they last changed (all of them, and every count inside the .idx files, with --verify).
    verify_here = int(os.environ.get("LOCAL_RANK", "0")) == 0
    manifest = open_manifest(args, cfg, verify_hashes=args.verify and verify_here)
    if verify_here:
        verify_shards(manifest, hashed=args.verify)  # --verify: open_manifest has just hashed every file
    validate(cfg, int(os.environ.get("WORLD_SIZE", "1")))
    if args.eval_tasks and args.no_save:
        raise RunError("--eval-tasks scores saved checkpoints: it cannot be combined with --no-save")
    manifest_sha256 = sha256_file(args.manifest)
    run_dir = Path(args.out)
    # Rank 0 owns the run folder while the run lives; a second run on it stops here.
    lock = runlock.acquire(run_dir) if os.environ.get("RANK", "0") == "0" else None
    try:
        resume_from = checkpoint_to_resume(args, cfg, manifest_sha256, run_dir / "checkpoints")
        finished = resume_from and finished_run(run_dir, checkpoint.read_state(resume_from), cfg, args.target_val_loss)
        if finished:
            if os.environ.get("RANK", "0") == "0":
                print(f"{run_dir}: complete ({finished}); nothing to do", flush=True)
            return 0
        stop = StopRequest()
        return train(args, cfg, manifest, manifest_sha256, run_dir, run_dir / "checkpoints", resume_from, stop, lock)
    finally:
        if lock is not None:
            lock.release()


def checkpoint_to_resume(args, cfg: TrainConfig, manifest_sha256: str, ckpt_root: Path) -> Path | None:
    """The checkpoint `--resume` continues from (None: start from step 0): the newest whose files read,
    checked against this launch."""
    if not args.resume:
        if checkpoint.latest_checkpoint(ckpt_root) is not None:
            raise RunError(f"{ckpt_root} already holds checkpoints: pass --resume to continue that run, "
                           "or choose another --out")
        return None
    is_logger = os.environ.get("RANK", "0") == "0"
    resume_from = checkpoint.newest_loadable(ckpt_root, report=lambda line: print(line, flush=True) if is_logger else None)
    if resume_from is None:
        if is_logger:
            print(f"no complete checkpoint under {ckpt_root}: starting from step 0", flush=True)
        return None
    check_resume_compatible(checkpoint.read_state(resume_from), cfg, manifest_sha256, resume_from,
                            data_parallel_size(cfg, int(os.environ.get("WORLD_SIZE", "1"))))
    return resume_from


def finished_run(run_dir: Path, saved: checkpoint.TrainerState, cfg: TrainConfig, target_spec: str | None) -> str | None:
    """Why the run whose newest checkpoint is `saved` has nothing left to do, or None: it stopped at
    that step having used up its tokens or having reached the same or a stricter target (its
    summary.json says so). A resumed finished run is then reused, as a finished pipeline stage is."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if summary.get("steps") != saved.step:
        return None
    if summary.get("status") == "done" and saved.consumed_tokens >= cfg.train_tokens:
        return f"all {cfg.train_tokens:,} tokens trained"
    val_loss, unigram = summary.get("val_loss"), summary.get("unigram_val_loss")
    if summary.get("status") == "target" and target_spec and val_loss is not None and unigram is not None:
        target = target_loss(target_spec, unigram)
        if val_loss < target:
            return f"validation loss {val_loss:.4f} below the target {target:.4f} at step {saved.step}"
    return None


def train(args, cfg: TrainConfig, manifest, manifest_sha256: str, run_dir: Path, ckpt_root: Path,
          resume_from: Path | None, stop: StopRequest, lock: runlock.RunLock | None) -> int:
    """Build the datasets and the engine, resume if asked, then run the loop; returns the exit status."""
    import torch
    import torch.distributed as dist

    from blending.reader import DataStream, ManifestError
    from trainer.downstream import DownstreamEvals
    from trainer.engine import build_engine
    from trainer.metrics import peak_tflops
    from trainer.parallel.groups import init_distributed
    from trainer.reporting import RunReporter, StartUp

    started_at = time.perf_counter()
    on_gpu = torch.cuda.is_available()
    init_distributed()  # the launcher's env, or a one-process world without a launcher
    joined_at = time.perf_counter()  # every rank has started (imports done)
    is_logger = dist.get_rank() == 0
    precision = cfg.precision = resolve_precision(cfg)

    run_dir.mkdir(parents=True, exist_ok=True)
    # The stream is recorded so that `python -m trainer.locate` and `blending locate --run` rebuild it.
    # Megatron's sample index caches live with the run (the shard folder may be read-only); rank 0
    # builds them, the other ranks read them.
    stream = DataStream(seq_length=cfg.model.seq_length, seed=cfg.seed, train_samples=schedules.total_samples(cfg),
                        valid_samples=cfg.run.eval_samples, manifest=str(manifest.path), manifest_sha256=manifest_sha256)
    if is_logger:
        stream.save(run_dir)
    try:
        train_ds, valid_ds = stream.datasets(manifest, cache_dir=run_dir / "index-cache")
    except ManifestError as error:  # an index cache that is not plain arrays
        raise RunError(f"refusing to train: {error}") from None
    if valid_ds is None:
        raise RunError(f"refusing to train: {manifest.path} has no validation documents, so nothing can be "
                       "validated on; build the shards from more documents (the valid split is a small fraction)")
    reference = unigram_baseline(manifest, valid_ds, cfg) if is_logger else None
    reference = broadcast_value(reference)
    data_ready = time.perf_counter()

    engine = build_engine(cfg, global_batch_size=schedules.global_batch_size(0, cfg.batch))
    progress, note = Progress(), None
    if resume_from is not None:
        progress, note = resume(engine, resume_from, cfg)
    target = target_loss(args.target_val_loss, reference) if args.target_val_loss else None

    peak = args.peak_tflops or (peak_tflops(torch.cuda.get_device_name(), precision) if on_gpu else None)
    reporter = RunReporter(run_dir, cfg, active=is_logger, last_step=progress.step, reference_loss=reference,
                           peak_tflops=peak, world_size=dist.get_world_size(), padded_vocab=engine.shape.padded_vocab)
    if note:
        reporter.note(note)
    reporter.start(args.preset, engine.data_parallel_size, progress.step,
                   StartUp(join_s=joined_at - started_at, data_s=data_ready - joined_at,
                           engine_s=time.perf_counter() - data_ready))

    evaluations = DownstreamEvals(args.eval_tasks, args.eval_shots, args.eval_limit, active=is_logger,
                                  log=lambda text: print(text, flush=True))
    status, progress, last_val = train_loop(args, cfg, engine, train_ds, valid_ds, progress, target, stop,
                                            reporter, manifest, manifest_sha256, ckpt_root, started_at, evaluations, lock)
    evaluations.wait()
    reporter.finish(status=status, steps=progress.step, tokens=progress.tokens(cfg.model.seq_length),
                    val_loss=last_val, target=target, target_is_unigram="unigram" in (args.target_val_loss or ""),
                    signal_name=stop.signal_name)
    dist.barrier()
    # A run that used up its tokens without reaching its target failed at what it was asked to do.
    return 3 if status == "done" and target is not None and not (last_val is not None and last_val < target) else 0


def resume(engine, resume_from: Path, cfg: TrainConfig) -> tuple[Progress, str | None]:
    """Load a checkpoint into the engine: where the run stands, and a note when the schedules changed since."""
    saved = checkpoint.load(resume_from, engine)
    progress = Progress(step=saved.step, consumed_samples=saved.consumed_samples)
    last = schedules.plan_step(saved.step - 1, saved.consumed_samples - (saved.scheduler or {}).get("global_batch", 0),
                               cfg, engine.data_parallel_size)
    if saved.scheduler and (last.lr, last.global_batch) != (saved.scheduler["lr"], saved.scheduler["global_batch"]):
        return progress, (f"note: the schedules changed since the checkpoint (its last step: lr "
                          f"{saved.scheduler['lr']:.4g}, batch {saved.scheduler['global_batch']}; with this config: "
                          f"lr {last.lr:.4g}, batch {last.global_batch})")
    return progress, None


def lock_lost(lock: runlock.RunLock | None) -> str | None:
    """Why the run lock (held by rank 0) no longer holds, None while it does or on the other ranks."""
    try:
        if lock is not None:
            lock.check()
    except runlock.RunLockLost as error:
        return str(error)
    return None


def train_loop(args, cfg: TrainConfig, engine, train_ds, valid_ds, progress: Progress, target: float | None,
               stop: StopRequest, reporter, manifest, manifest_sha256: str, ckpt_root: Path,
               started_at: float, evaluations, lock: runlock.RunLock | None) -> tuple[str, Progress, float | None]:
    """Steps until the tokens are used up or a stop condition holds; returns (status, progress, last
    validation loss). Every rank takes the same decisions, so all stop at the same step."""
    from trainer.data import micro_batch_sample_ids, micro_batches

    seq, micro = cfg.model.seq_length, cfg.batch.micro_batch_size
    dp_size, dp_rank = engine.data_parallel_size, engine.data_parallel_rank

    def evaluate() -> float:
        ids = micro_batch_sample_ids(0, cfg.run.eval_samples, micro, dp_size, dp_rank)
        data = micro_batches(valid_ds, ids) if engine.needs_data else None
        return engine.eval_batch(data, num_micro_batches=len(ids))

    last_val = None
    status = "done"
    while progress.tokens(seq) < cfg.train_tokens:
        plan = schedules.plan_step(progress.step, progress.consumed_samples, cfg, dp_size)
        if engine.global_batch_size != plan.global_batch:
            engine.set_global_batch_size(plan.global_batch)
        engine.set_lr(plan.lr)
        ids = micro_batch_sample_ids(plan.consumed_samples, plan.global_batch, micro, dp_size, dp_rank)
        started = time.perf_counter()
        loss = engine.train_batch(micro_batches(train_ds, ids) if engine.needs_data else None)
        elapsed = time.perf_counter() - started
        if not math.isfinite(loss):  # the same on every rank: the loss is the replicas' mean
            raise RunError(f"loss is {loss} at step {progress.step + 1}: stopping without a checkpoint; "
                           f"resume from the last good one with a lower optimizer.lr")
        progress = Progress(step=progress.step + 1, consumed_samples=plan.consumed_samples + plan.global_batch)
        reporter.train_step(progress.step, progress.consumed_samples, loss, plan.lr, plan.global_batch, elapsed)

        finished = progress.tokens(seq) >= cfg.train_tokens
        if cfg.run.eval_interval and (progress.step % cfg.run.eval_interval == 0 or finished):
            last_val = evaluate()
            reporter.validation(progress.step, progress.tokens(seq), last_val)
            if target is not None and last_val < target:
                status, finished = "target", True
        if args.max_steps is not None and progress.step >= args.max_steps:
            status, finished = "max_steps", True
        out_of_time = args.exit_duration_mins is not None and time.perf_counter() - started_at > 60 * args.exit_duration_mins
        lost_because = lock_lost(lock)
        signalled, out_of_time, lost = any_rank(stop.signal_name is not None, out_of_time, lost_because is not None)
        if lost:  # another run may own the folder now: no rank may write into it
            raise runlock.RunLockLost(lost_because or "rank 0 lost the run lock: stopped before writing a checkpoint")
        if out_of_time:
            status, finished = "time_limit", True
        if signalled:
            status, finished = "signal", True
        periodic = cfg.run.save_interval and progress.step % cfg.run.save_interval == 0
        downstream = args.eval_tasks and (finished or (args.eval_every and progress.step % args.eval_every == 0))
        if not args.no_save and (finished or periodic or downstream):
            state = checkpoint.TrainerState(step=progress.step, consumed_samples=progress.consumed_samples,
                                            consumed_tokens=progress.tokens(seq), config=to_dict(cfg),
                                            manifest_sha256=manifest_sha256, data_parallel=dp_size,
                                            scheduler={"lr": plan.lr, "global_batch": plan.global_batch},
                                            tokenizer={"file": checkpoint.TOKENIZER_FILE,
                                                       "sha256": manifest.tokenizer_sha256,
                                                       "vocab_size": manifest.vocab_size, "eod_id": manifest.eod_id})
            saved_to = checkpoint.save(ckpt_root, engine, state, keep=cfg.run.keep_checkpoints,
                                       tokenizer_file=manifest.tokenizer_path)
            reporter.checkpoint(progress.step, saved_to)
            if downstream:
                evaluations.start(saved_to, ckpt_root.parent / "eval" / f"{saved_to.name}.json")
        if finished:
            break
    return status, progress, last_val


if __name__ == "__main__":
    sys.exit(main())
