"""Named starting points for the typed config. Each is the paper's recipe with the sizes changed.

- `tiny-cpu`: a 4-layer model that trains in minutes on a laptop CPU with TP2 x PP2 x DP2.
- `1b`: a 1.3B-parameter GPT (24 layers, hidden 2048) for one GPU in bf16.
- `mtnlg-530b`: the paper's model and recipe on 280 DGX A100 nodes (TP 8 x PP 35 x DP 8); for planning
  and config checks, not for running here.
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import (
    BatchConfig,
    ConfigError,
    ModelConfig,
    OptimizerConfig,
    ParallelConfig,
    RunConfig,
    TrainConfig,
)

DEEPSPEED_JSON_DIR = Path(__file__).resolve().parents[1] / "infra" / "deepspeed"


def _deepspeed_json(name: str) -> str | None:
    """The preset's DeepSpeed settings shipped in infra/deepspeed, when the source tree is present."""
    path = DEEPSPEED_JSON_DIR / f"{name}.json"
    return str(path) if path.is_file() else None


def tiny_cpu() -> TrainConfig:
    # Sized so that `make demo` (8 processes on 2 cores) gets its validation loss 15% below the unigram
    # model's in a few minutes (about 160 steps, 450k tokens on the demo's shards): small batches learn
    # more per token at this size (16 for the first 100 steps, then 32), micro-batches of 8 halve the
    # pipeline's messages against 4, warmup over 10 steps, cosine over the whole 300-step budget.
    seq, batch, steps = 128, 32, 300
    return TrainConfig(
        model=ModelConfig(
            num_layers=4,
            hidden_size=128,
            num_attention_heads=4,
            seq_length=seq,
            make_vocab_size_divisible_by=8,
        ),
        parallel=ParallelConfig(tensor=2, pipeline=2, zero_stage=1, activation_checkpoint_interval=0),
        optimizer=OptimizerConfig(
            lr=3.0e-3,
            warmup_tokens=batch * seq * 10,
            decay_tokens=batch * seq * steps,
        ),
        batch=BatchConfig(
            micro_batch_size=8,
            global_batch_size=batch,
            rampup_start=16,
            rampup_increment=16,
            rampup_tokens=16 * seq * 100,
        ),
        run=RunConfig(log_interval=10, eval_interval=20, eval_samples=64, save_interval=100, keep_checkpoints=2,
                      deepspeed_json=_deepspeed_json("tiny-cpu")),
        train_tokens=batch * seq * steps,
        precision="fp32",
    )


def gpt_1b() -> TrainConfig:
    # GPT-3 XL shape (1.3B parameters); batch ramp and lr warmup shortened to this scale.
    return TrainConfig(
        model=ModelConfig(
            num_layers=24,
            hidden_size=2048,
            num_attention_heads=16,
            seq_length=2048,
        ),
        # Without recomputation: the activations of a 1.3B model at micro-batch 8 fit in 80 GB.
        parallel=ParallelConfig(tensor=1, pipeline=1, zero_stage=1, activation_checkpoint_interval=0),
        optimizer=OptimizerConfig(
            lr=2.0e-4,
            warmup_tokens=375_000_000,
            decay_tokens=26_000_000_000,
        ),
        batch=BatchConfig(
            micro_batch_size=8,
            global_batch_size=512,
            rampup_start=32,
            rampup_increment=32,
            rampup_tokens=4_000_000_000,
        ),
        run=RunConfig(log_interval=10, eval_interval=1000, eval_samples=64, save_interval=2000,
                      deepspeed_json=_deepspeed_json("1b")),
        train_tokens=26_000_000_000,
        precision="auto",
    )


def mtnlg_530b() -> TrainConfig:
    # Every default of TrainConfig is the paper's value.
    return TrainConfig(
        model=ModelConfig(num_layers=105, hidden_size=20480, num_attention_heads=128, seq_length=2048),
        parallel=ParallelConfig(tensor=8, pipeline=35, zero_stage=1, activation_checkpoint_interval=1),
        run=RunConfig(log_interval=1, eval_interval=1000, eval_samples=1920, save_interval=100,
                      deepspeed_json=_deepspeed_json("mtnlg-530b")),
        precision="bf16",
    )


PRESETS = {"tiny-cpu": tiny_cpu, "1b": gpt_1b, "mtnlg-530b": mtnlg_530b}


def get_preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
