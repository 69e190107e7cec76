"""Token-based schedules of the paper: learning rate (linear warmup, cosine decay) and batch ramp-up.

Both are pure functions of the number of tokens consumed so far, so a resumed run (or one with another
data-parallel size) follows exactly the same schedule; the only state is the token count, which the
checkpoint stores.

Conventions (the same as Megatron's, with tokens in place of samples):
- a step's global batch is `global_batch_size(tokens consumed before the step)`;
- a step's learning rate is `learning_rate(tokens consumed once the step is done)`, so the first step
  of a warmup already has a non-zero rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainer.config import BatchConfig, OptimizerConfig, TrainConfig


def learning_rate(tokens: int, opt: OptimizerConfig) -> float:
    """Linear warmup from 0 to `lr` over `warmup_tokens`, then cosine decay to `min_lr_ratio * lr`
    reached at `decay_tokens` (counted from token 0) and held after."""
    peak, floor = opt.lr, opt.lr * opt.min_lr_ratio
    if opt.warmup_tokens > 0 and tokens < opt.warmup_tokens:
        return peak * tokens / opt.warmup_tokens
    if tokens >= opt.decay_tokens:
        return floor
    progress = (tokens - opt.warmup_tokens) / (opt.decay_tokens - opt.warmup_tokens)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


def global_batch_size(tokens: int, batch: BatchConfig) -> int:
    """Ramp from `rampup_start` in steps of `rampup_increment` to `global_batch_size`: the ramp's
    `rampup_tokens` are split evenly between the increments, and each increment applies once its
    share of tokens has been consumed."""
    if batch.rampup_tokens <= 0 or batch.rampup_start >= batch.global_batch_size:
        return batch.global_batch_size
    increments = (batch.global_batch_size - batch.rampup_start) // batch.rampup_increment
    done = tokens * increments // batch.rampup_tokens  # integer math: no float drift at boundaries
    return min(batch.global_batch_size, batch.rampup_start + done * batch.rampup_increment)


def micro_batches_per_step(tokens: int, batch: BatchConfig, data_parallel_size: int) -> int:
    """Gradient-accumulation steps per data-parallel rank for the step starting at `tokens`."""
    return global_batch_size(tokens, batch) // (batch.micro_batch_size * data_parallel_size)


@dataclass(frozen=True)
class Step:
    """What one optimizer step does, derived from the tokens consumed before it."""

    index: int  # 0-based step number
    consumed_samples: int  # samples consumed before this step
    global_batch: int
    micro_batches: int  # per data-parallel rank
    lr: float
    tokens_after: int


def plan_step(index: int, consumed_samples: int, cfg: TrainConfig, data_parallel_size: int) -> Step:
    seq = cfg.model.seq_length
    tokens = consumed_samples * seq
    gbs = global_batch_size(tokens, cfg.batch)
    tokens_after = tokens + gbs * seq
    return Step(
        index=index,
        consumed_samples=consumed_samples,
        global_batch=gbs,
        micro_batches=micro_batches_per_step(tokens, cfg.batch, data_parallel_size),
        lr=learning_rate(tokens_after, cfg.optimizer),
        tokens_after=tokens_after,
    )


def total_samples(cfg: TrainConfig) -> int:
    """Samples the whole run consumes: steps are taken until `train_tokens` is reached (the last step
    may overshoot by less than one global batch)."""
    seq, consumed = cfg.model.seq_length, 0
    target = cfg.train_tokens
    # The ramp makes the count not a closed form; the loop is over steps, cheap even for 530B.
    while consumed * seq < target:
        consumed += global_batch_size(consumed * seq, cfg.batch)
    return consumed
