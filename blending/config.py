"""The blending service's one typed config (infra/blend.yaml). Defaults are the paper's values."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from blending.presets import preset_weights
from blending.tokenizer import EOD_TOKEN
from blending.typed_config import ConfigError, check_safe_name, load_dataclass, read_mapping


@dataclass
class TokenizerConfig:
    file: str | None = None  # a tokenizer.json (e.g. from `python -m blending train-tokenizer`)
    vocab: str | None = None  # or GPT-2 style vocab.json ...
    merges: str | None = None  # ... + merges.txt
    eod_token: str = EOD_TOKEN
    train_vocab_size: int | None = None  # `file` missing: train a BPE of this size on the blend's training documents


@dataclass
class SourceConfig:
    name: str
    inputs: list[str]  # stage output folders (part-*.parquet, _SUCCESS)
    weight: float | None = None  # None: taken from `weights_preset`
    select_source: str | None = None  # rows whose `source` column equals this; default: `name`

    @property
    def source_value(self) -> str:
        return self.select_source or self.name


@dataclass
class BlendConfig:
    tokenizer: TokenizerConfig
    sources: list[SourceConfig]
    valid_fraction: float = 0.02  # the paper's 2% validation split
    shard_size_tokens: int = 500_000_000  # a shard closes before it would pass this many tokens
    text_column: str = "text"
    weights_preset: str | None = None  # "mtnlg": weights from the paper's Table 1
    skip_missing_sources: bool = False  # true: sources without documents are left out, and listed

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("no sources")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ConfigError(f"valid_fraction {self.valid_fraction} is not in [0, 1)")
        if self.shard_size_tokens < 1:
            raise ConfigError("shard_size_tokens must be positive")
        if self.tokenizer.file is None and (self.tokenizer.vocab is None or self.tokenizer.merges is None):
            raise ConfigError("tokenizer needs `file` (tokenizer.json) or both `vocab` and `merges`")
        names, values = set(), set()
        preset = preset_weights(self.weights_preset) if self.weights_preset else {}
        for source in self.sources:
            check_safe_name(source.name, "sources: name")
            if source.name in names:
                raise ConfigError(f"source {source.name!r} is listed twice")
            if source.source_value in values:
                raise ConfigError(f"two sources select rows of source {source.source_value!r}")
            names.add(source.name)
            values.add(source.source_value)
            if not source.inputs:
                raise ConfigError(f"source {source.name!r} has no inputs")
            if source.weight is None:
                if source.name not in preset:
                    raise ConfigError(f"source {source.name!r} has no weight and is not in preset {self.weights_preset!r}")
                source.weight = preset[source.name]
            if not source.weight > 0:
                raise ConfigError(f"source {source.name!r} weight {source.weight} must be positive")

    @classmethod
    def load(cls, path: str | Path) -> BlendConfig:
        return cls.from_dict(read_mapping(path), where=str(path))

    @classmethod
    def from_dict(cls, raw: dict, where: str = "config") -> BlendConfig:
        """Checked by type (blending/typed_config.py), then by the class's own rules."""
        return load_dataclass(cls, raw, where)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self, tokenizer_sha256: str) -> str:
        """What the output depends on besides the input files: this config and the tokenizer's bytes."""
        payload = json.dumps({"config": self.to_dict(), "tokenizer_sha256": tokenizer_sha256}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

