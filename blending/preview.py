"""What a training run would draw from a manifest: the realised mixture and a Table-1-style summary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blending.blend import blending_indices, normalize, prefix_deviation
from blending.manifest import Manifest


@dataclass(frozen=True)
class SourceRow:
    name: str
    weight: float
    tokens: int  # in the split
    samples: int  # drawn among the first N samples
    share: float  # samples / N
    epochs: float  # weight * training tokens / tokens


@dataclass(frozen=True)
class Preview:
    split: str
    samples: int
    seq_length: int
    rows: list[SourceRow]
    max_prefix_deviation: float  # over every prefix of the stream longer than `skip`
    skip: int

    @property
    def training_tokens(self) -> int:
        return self.samples * self.seq_length


def preview(manifest: Manifest, samples: int, seq_length: int, split: str = "train", skip: int = 100) -> Preview:
    """Draw `samples` samples of `seq_length` tokens with the blending rule megatron uses and count them per source."""
    shard_sources = [name for name, _ in manifest.shards(split)]
    blend = manifest.blend_per_split[("train", "valid").index(split)]
    if blend is None or samples < 1:
        raise ValueError(f"the {split} split has no shards" if blend is None else "samples must be positive")
    dataset_index, _ = blending_indices(normalize(blend[1]), samples)
    names = [n for n in manifest.sources if manifest.sources[n].shards(split)]
    source_of_shard = np.array([names.index(n) for n in shard_sources], dtype=np.int64)
    per_sample = source_of_shard[dataset_index]
    counts = np.bincount(per_sample, minlength=len(names))
    weights = normalize([manifest.sources[n].weight for n in names])
    rows = []
    for i, name in enumerate(names):
        tokens = manifest.sources[name].tokens(split)
        rows.append(SourceRow(name, weights[i], tokens, int(counts[i]), counts[i] / samples,
                              weights[i] * samples * seq_length / tokens))
    return Preview(split, samples, seq_length, rows, prefix_deviation(per_sample, weights, skip), skip)


def _human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def format_preview(p: Preview) -> str:
    width = max([len(r.name) for r in p.rows] + [8])
    lines = [f"Realised mixture of the first {p.samples:,} {p.split} samples ({p.seq_length} tokens each), "
             "Megatron's error-tracking blend",
             f"  {'source':<{width}}  {'weight':>8}  {'samples':>9}  {'realised':>8}  {'diff':>8}"]
    for r in p.rows:
        lines.append(f"  {r.name:<{width}}  {r.weight:8.2%}  {r.samples:9,}  {r.share:8.2%}  {r.share - r.weight:+8.3%}")
    lines.append(f"  largest |share - weight| over every prefix longer than {p.skip} samples: {p.max_prefix_deviation:.4%}")
    lines += ["",
              f"Table-1 summary for {_human(p.training_tokens)} training tokens ({p.samples:,} x {p.seq_length})",
              f"  {'source':<{width}}  {'tokens':>9}  {'weight':>8}  {'epochs':>7}"]
    for r in p.rows:
        lines.append(f"  {r.name:<{width}}  {_human(r.tokens):>9}  {r.weight:8.2%}  {r.epochs:7.2f}")
    total = sum(r.tokens for r in p.rows)
    lines.append(f"  {'total':<{width}}  {_human(total):>9}  {1:8.2%}  {p.training_tokens / total:7.2f}")
    return "\n".join(lines)
