"""The trainer's one typed config. Defaults are the MT-NLG 530B paper's values (arXiv 2201.11990).

Schedules are token-based, as in the paper: the lr warms up over `warmup_tokens` and decays (cosine,
to `min_lr_ratio` of the peak) by `decay_tokens`; the global batch ramps from `rampup_start` in steps of
`rampup_increment` up to `global_batch_size` over `rampup_tokens`. The micro-batch size is fixed and
the gradient-accumulation count follows the global batch.

Values are set in three places, each with one job: a preset (trainer.presets), `--set key=value`
overrides on the command line (or `--config FILE`), and an optional DeepSpeed JSON
(`run.deepspeed_json`, infra/deepspeed/) for what only DeepSpeed knows about (buckets, communication).
The engine derives the recipe's DeepSpeed keys from the typed config and merges the JSON with
`merge_deepspeed_json`, which refuses a JSON that contradicts the typed config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from blending import typed_config

# A config value is missing, malformed or inconsistent with the run's topology: one class for every
# typed config, so a caller catches the type check's errors and the trainer's own with it.
ConfigError = typed_config.ConfigError


@dataclass
class ModelConfig:
    num_layers: int = 105
    hidden_size: int = 20480
    num_attention_heads: int = 128
    seq_length: int = 2048
    vocab_size: int = 50257  # unpadded; padded to a multiple of make_vocab_size_divisible_by * TP
    make_vocab_size_divisible_by: int = 128
    layernorm_epsilon: float = 1e-5
    dropout: float = 0.0
    init_std: float | None = None  # None: sqrt(1 / (3 * hidden_size)), the paper's choice

    @property
    def resolved_init_std(self) -> float:
        return self.init_std if self.init_std is not None else math.sqrt(1.0 / (3.0 * self.hidden_size))

    def padded_vocab_size(self, tensor_parallel: int) -> int:
        """Megatron's padding: a multiple of make_vocab_size_divisible_by x TP, so every tensor-parallel
        slice of the embedding has the same, aligned size."""
        multiple = self.make_vocab_size_divisible_by * tensor_parallel
        return -(-self.vocab_size // multiple) * multiple


@dataclass
class ParallelConfig:
    tensor: int = 8
    pipeline: int = 35
    zero_stage: int = 1  # the DeepSpeed pipeline engine supports ZeRO 0/1 only
    # transformer blocks between activation checkpoints; the paper recomputes every block (1), 0 stores all
    activation_checkpoint_interval: int = 1


@dataclass
class OptimizerConfig:
    lr: float = 5.0e-5
    beta1: float = 0.9
    beta2: float = 0.95  # lowered from 0.99 in the paper
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_grad: float = 1.0
    warmup_tokens: int = 1_000_000_000
    decay_tokens: int = 340_000_000_000  # counted from token 0, warmup included (as Megatron)
    min_lr_ratio: float = 0.1  # cosine decay to 10% of lr


@dataclass
class BatchConfig:
    micro_batch_size: int = 1
    global_batch_size: int = 1920
    rampup_start: int = 32
    rampup_increment: int = 32
    rampup_tokens: int = 12_000_000_000


@dataclass
class RunConfig:
    """How the run is driven and observed; none of it changes the math of training."""

    log_interval: int = 1  # steps between log lines
    eval_interval: int = 100  # steps between validation passes (0: never)
    eval_samples: int = 64  # validation samples per pass, always the same ones
    save_interval: int = 1000  # steps between checkpoints (0: only at the end and on a signal)
    keep_checkpoints: int = 3  # complete checkpoints kept; older ones are deleted
    deepspeed_json: str | None = None  # extra DeepSpeed settings (infra/deepspeed/*.json)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    run: RunConfig = field(default_factory=RunConfig)
    train_tokens: int = 270_000_000_000
    seed: int = 1234
    precision: str = "auto"  # "auto": bf16 where the hardware supports it, else fp32; or "bf16"/"fp32"


# Fields that define the sample stream and the schedules: a resumed run must agree on them, or it
# would silently continue a different stream than the one its checkpoint was part of.
STREAM_FIELDS = ("model.seq_length", "batch.micro_batch_size", "train_tokens", "seed")


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: dict, cls=TrainConfig, where: str = "config"):
    """Rebuild a (nested) config dataclass, checked by type; unknown keys are an error, missing keys take
    defaults. `where` names the file or record the values came from."""
    return typed_config.load_dataclass(cls, data, where)


def _parse_scalar(text: str, annotation):
    """Turn an override's text into the field's type (int, float, bool, str, or `X | None`)."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if type(None) in options and text.lower() in ("none", "null"):
        return None
    for kind in options:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
        elif kind is int:
            try:
                return int(float(text)) if "e" in text.lower() and float(text).is_integer() else int(text)
            except ValueError:
                continue
        elif kind is float:
            try:
                return float(text)
            except ValueError:
                continue
        elif kind is str:
            return text
    raise ConfigError(f"cannot read {text!r} as {typed_config.describe_type(annotation)}")


def apply_override(cfg: TrainConfig, assignment: str) -> None:
    """Apply one `section.key=value` (or `key=value` for top-level keys) override in place."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment}: expected key=value")
    dotted, text = assignment.split("=", 1)
    *path, name = dotted.strip().split(".")
    target = cfg
    for part in path:
        if not hasattr(target, part) or not dataclasses.is_dataclass(getattr(target, part)):
            raise ConfigError(f"--set {dotted}: unknown config section {part!r}")
        target = getattr(target, part)
    hints = typing.get_type_hints(type(target))
    if name not in hints or dataclasses.is_dataclass(hints[name]):
        raise ConfigError(f"--set {dotted}: no such config key")
    try:
        setattr(target, name, _parse_scalar(text.strip(), hints[name]))
    except ConfigError as error:
        raise ConfigError(f"--set {dotted}: {error}") from None


def load_overrides_file(cfg: TrainConfig, path: str | Path) -> None:
    """Apply a JSON or YAML file shaped like the config (nested sections) on top of `cfg`, checked by
    type: an unknown key or a wrong type names the file and the key."""
    merged = _merged(to_dict(cfg), typed_config.read_mapping(path))
    loaded = from_dict(merged, where=str(path))
    for f in dataclasses.fields(cfg):
        setattr(cfg, f.name, getattr(loaded, f.name))


def _merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` laid over it, section by section."""
    merged = dict(base)
    for key, value in changes.items():
        both_sections = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_sections else value
    return merged


def get_field(cfg: TrainConfig, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def resolve_precision(cfg: TrainConfig) -> str:
    """"auto" means bf16 on a GPU that supports it, fp32 otherwise (CPU)."""
    if cfg.precision in ("bf16", "fp32"):
        return cfg.precision
    if cfg.precision != "auto":
        raise ConfigError(f"precision must be auto, bf16 or fp32, not {cfg.precision!r}")
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def data_parallel_size(cfg: TrainConfig, world_size: int) -> int:
    model_parallel = cfg.parallel.tensor * cfg.parallel.pipeline
    if world_size % model_parallel:
        raise ConfigError(
            f"world size {world_size} is not a multiple of TP {cfg.parallel.tensor} x PP {cfg.parallel.pipeline}"
        )
    return world_size // model_parallel


def check_model_shape(model: ModelConfig, tensor: int = 1, pipeline: int = 1) -> None:
    """The one check of the model's shape for a TP `tensor` x PP `pipeline` layout. `validate` runs it, and
    so does trainer.model.gpt.model_shape, through which every model is built."""
    if model.hidden_size % model.num_attention_heads:
        raise ConfigError(f"hidden_size {model.hidden_size} not divisible by {model.num_attention_heads} heads")
    if model.num_attention_heads % tensor:
        raise ConfigError(f"{model.num_attention_heads} heads not divisible by TP {tensor}")
    if model.num_layers < pipeline:
        raise ConfigError(f"{model.num_layers} layers cannot fill {pipeline} pipeline stages")


def validate(cfg: TrainConfig, world_size: int) -> None:
    """Refuse a config that cannot run on `world_size` processes, with the reason."""
    m, p, b, o = cfg.model, cfg.parallel, cfg.batch, cfg.optimizer
    dp = data_parallel_size(cfg, world_size)
    check_model_shape(m, p.tensor, p.pipeline)
    if p.zero_stage not in (0, 1):
        raise ConfigError("the DeepSpeed pipeline engine supports ZeRO stage 0 or 1 only")
    step = b.micro_batch_size * dp
    for name in ("global_batch_size", "rampup_start", "rampup_increment"):
        value = getattr(b, name)
        if value <= 0 or value % step:
            raise ConfigError(
                f"batch.{name}={value} must be a positive multiple of micro_batch_size x DP = "
                f"{b.micro_batch_size} x {dp} = {step}"
            )
    if b.rampup_start > b.global_batch_size:
        raise ConfigError("batch.rampup_start exceeds batch.global_batch_size")
    if (b.global_batch_size - b.rampup_start) % b.rampup_increment:
        raise ConfigError("batch.global_batch_size - rampup_start must be a multiple of rampup_increment")
    if o.decay_tokens < o.warmup_tokens:
        raise ConfigError("optimizer.decay_tokens counts from token 0 and must be >= warmup_tokens")
    if not 0.0 <= o.min_lr_ratio <= 1.0:
        raise ConfigError("optimizer.min_lr_ratio must be in [0, 1]")
    if cfg.run.eval_interval and cfg.run.eval_samples % step:
        raise ConfigError(f"run.eval_samples={cfg.run.eval_samples} must be a multiple of {step}")
    if cfg.run.keep_checkpoints < 1:
        raise ConfigError("run.keep_checkpoints must be >= 1")
    if cfg.run.deepspeed_json:
        _read_deepspeed_json(cfg.run.deepspeed_json)  # a bad file is named before any process starts
    resolve_precision(cfg)


def merge_deepspeed_json(owned: dict, json_path: str | None) -> dict:
    """The DeepSpeed config for the engine: the JSON file's settings plus `owned`, the keys the engine
    derives from the typed config (batch sizes, clipping, ZeRO stage, precision, ...).

    A JSON that sets one of the owned keys to another value is refused, not silently overridden: a recipe
    value lives in one place, the typed config.
    """
    if not json_path:
        return owned
    return _merge_owned(_read_deepspeed_json(json_path), owned, where=str(json_path))


def _read_deepspeed_json(path: str) -> dict:
    try:
        base = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such DeepSpeed JSON (run.deepspeed_json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a readable DeepSpeed JSON ({error})") from None
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: expected a JSON object of DeepSpeed settings, got {type(base).__name__}")
    return base


def _merge_owned(base: dict, owned: dict, where: str, prefix: str = "") -> dict:
    merged = dict(base)
    for key, value in owned.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge_owned(base[key], value, where, f"{prefix}{key}.")
        elif key in base and base[key] != value:
            raise ConfigError(
                f"{where}: DeepSpeed key {prefix}{key}={base[key]!r} conflicts with the trainer config "
                f"({value!r}); set it with --set instead"
            )
        else:
            merged[key] = value
    return merged
