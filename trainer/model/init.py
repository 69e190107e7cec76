"""Initialisation that does not depend on the parallel layout.

The full model is defined once by the seed: every parameter has a layout-independent name (its layer's
`full_name`, e.g. "layers.3.fc1.weight", the name checkpoints use too) and its full tensor is cut into
slices along its `partition_dim` (rows for column-parallel weights and the embedding, columns for
row-parallel weights, rows for replicated ones). Slice i is drawn from its own generator, seeded by (seed, name, i). A rank therefore
draws exactly its shard, without materialising the full tensor, and any TP/PP/DP layout starts from the
same weights as one process.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn


def slice_seed(seed: int, name: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}\0{name}\0{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def draw_normal_slices(seed: int, name: str, slice_shape: tuple[int, ...], indices: range, std: float,
                       *, valid_slices: int | None = None) -> torch.Tensor:
    """Slices `indices` of the full tensor, stacked on dim 0; slices at or past `valid_slices` are zero
    (the padded vocabulary rows)."""
    out = torch.zeros((len(indices), *slice_shape), dtype=torch.float32)
    generator = torch.Generator()
    for row, index in enumerate(indices):
        if valid_slices is not None and index >= valid_slices:
            continue
        generator.manual_seed(slice_seed(seed, name, index))
        out[row] = torch.randn(slice_shape, generator=generator, dtype=torch.float32) * std
    return out


def init_normal_(param: nn.Parameter, *, seed: int, name: str, std: float, tp_rank: int,
                 valid_rows: int | None = None) -> None:
    """Fill `param` with this rank's shard of the full normal(0, std) tensor called `name`; rows at or past
    `valid_rows` (the padded vocabulary) are zero. A parameter on the meta device is left as it is."""
    if param.is_meta:
        return
    sliced = bool(getattr(param, "tensor_model_parallel", False))
    dim = int(getattr(param, "partition_dim", 0)) if sliced else 0
    local = param.shape[dim]
    start = tp_rank * local if sliced else 0
    moved = param.detach().movedim(dim, 0)  # a view: slices along `dim` become rows
    values = draw_normal_slices(seed, name, tuple(moved.shape[1:]), range(start, start + local), std,
                                valid_slices=valid_rows)
    with torch.no_grad():
        moved.copy_(values.to(device=param.device, dtype=param.dtype))


def init_constant_(param: nn.Parameter, value: float) -> None:
    with torch.no_grad():
        param.fill_(value)


def output_layer_std(std: float, num_layers: int) -> float:
    """Projections that write into the residual stream are scaled by depth (GPT-2 / Megatron)."""
    return std / math.sqrt(2.0 * num_layers)
