"""What a training run reports, on global rank 0: the start line, a log line every `run.log_interval`
steps (tokens/s, TFLOP/s per GPU, MFU, ETA), the validation and checkpoint lines, RUN/config.json,
the records of trainer.metrics (metrics.csv, valid.csv, TensorBoard, loss.png) and RUN/summary.json.

The training loop (trainer.train) calls it on every rank; on the other ranks it does nothing, so the
loop carries no `if rank == 0` of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from blending.atomic import write_text_atomic
from trainer.config import TrainConfig, to_dict
from trainer.metrics import RunRecords, format_eta, narayanan_flops_per_iteration


@dataclass
class StartUp:
    """Seconds spent before the first step: joining the job, building the datasets, building the engine."""

    join_s: float
    data_s: float
    engine_s: float


class RunReporter:
    def __init__(self, run_dir: Path, cfg: TrainConfig, *, active: bool, last_step: int, reference_loss: float,
                 peak_tflops: float | None, world_size: int, padded_vocab: int):
        self.run_dir = run_dir
        self.cfg = cfg
        self.active = active
        self.reference_loss = reference_loss
        self.peak = peak_tflops
        self.world_size = world_size
        self.padded_vocab = padded_vocab
        self._interval_tokens, self._interval_time = 0, 0.0
        self.records = None
        if active:
            write_text_atomic(run_dir / "config.json", json.dumps(to_dict(cfg), indent=1))
            self.records = RunRecords(run_dir, last_step=last_step, reference_loss=reference_loss)

    def _print(self, line: str) -> None:
        if self.active:
            print(line, flush=True)

    def note(self, line: str) -> None:
        self._print(line)

    def start(self, preset: str, data_parallel: int, first_step: int, times: StartUp) -> None:
        cfg, seq = self.cfg, self.cfg.model.seq_length
        self._print(
            f"run: {preset} {cfg.model.num_layers}L h{cfg.model.hidden_size} seq {seq} vocab "
            f"{cfg.model.vocab_size} | TP{cfg.parallel.tensor} x PP{cfg.parallel.pipeline} x DP{data_parallel} "
            f"| {cfg.precision} | {'resuming at step ' + str(first_step) if first_step else 'from step 0'}"
            f" | unigram val loss {self.reference_loss:.4f} | start-up: join {times.join_s:.1f} s, data "
            f"{times.data_s:.1f} s, engine {times.engine_s:.1f} s")

    def train_step(self, step: int, consumed_samples: int, loss: float, lr: float, global_batch: int,
                   elapsed: float) -> None:
        """One optimizer step done: a metrics row, and the log line at every `run.log_interval` steps."""
        cfg, seq = self.cfg, self.cfg.model.seq_length
        tokens = consumed_samples * seq
        self._interval_tokens += global_batch * seq
        self._interval_time += elapsed
        if not self.active:
            return
        flops = narayanan_flops_per_iteration(global_batch, seq, cfg.model.num_layers, cfg.model.hidden_size,
                                              self.padded_vocab, cfg.parallel.activation_checkpoint_interval > 0)
        tflops = flops / (elapsed * self.world_size * 1e12)
        peak = self.peak
        self.records.log_train({
            "step": step, "tokens": tokens, "samples": consumed_samples,
            "loss": loss, "lr": lr, "global_batch": global_batch, "step_s": round(elapsed, 6),
            "tokens_per_s": round(global_batch * seq / elapsed, 2), "tflops_per_gpu": float(f"{tflops:.6g}"),
            "mfu": round(tflops / peak, 5) if peak else None,
        })
        if step % cfg.run.log_interval == 0:
            rate = self._interval_tokens / self._interval_time
            interval_tflops = (flops / global_batch * self._interval_tokens / seq
                               / (self._interval_time * self.world_size * 1e12))
            eta = (cfg.train_tokens - tokens) / rate
            mfu = f" | MFU {interval_tflops / peak:.1%}" if peak else ""
            print(f"step {step:>7} | tokens {tokens:>13,} | loss {loss:.4f} | lr {lr:.3e}"
                  f" | batch {global_batch:>5} | {rate:,.0f} tok/s | {interval_tflops:.3g} TFLOP/s/GPU{mfu}"
                  f" | ETA {format_eta(eta)}", flush=True)
            self._interval_tokens, self._interval_time = 0, 0.0

    def validation(self, step: int, tokens: int, val_loss: float) -> None:
        if not self.active:
            return
        self.records.log_valid({"step": step, "tokens": tokens, "val_loss": val_loss})
        print(f"step {step:>7} | validation loss {val_loss:.4f} (unigram {self.reference_loss:.4f})", flush=True)

    def checkpoint(self, step: int, saved_to: Path) -> None:
        self._print(f"step {step:>7} | checkpoint {saved_to}")

    def finish(self, *, status: str, steps: int, tokens: int, val_loss: float | None, target: float | None,
               target_is_unigram: bool, signal_name: str | None) -> None:
        """Final plot, RUN/summary.json, the verdict against the target and the summary as one JSON line."""
        if not self.active:
            return
        self.records.plot()
        self.records.close()
        reference = self.reference_loss
        summary = {"status": status, "steps": steps, "tokens": tokens,
                   "val_loss": val_loss, "unigram_val_loss": reference, "target_val_loss": target,
                   "beats_unigram": val_loss is not None and val_loss < reference}
        write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=1))
        if status == "signal":
            print(f"stopped by {signal_name} after step {steps}; resume with --resume", flush=True)
        if target is not None and val_loss is not None:
            verdict = "beats" if val_loss < target else "does not beat"
            print(f"validation loss {val_loss:.4f} {verdict} the target {target:.4f}"
                  f"{f' (from the unigram model of the data, {reference:.4f})' if target_is_unigram else ''} after "
                  f"{steps} steps, {tokens:,} tokens", flush=True)
        print(json.dumps(summary), flush=True)
