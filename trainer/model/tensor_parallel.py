"""Megatron tensor slicing behind one small interface.

megatron-core's layers do the slicing and the communication (its column/row-parallel linears, vocabulary-
parallel embedding, the all-reduce in the logits' backward and the vocabulary-parallel cross-entropy); they
run on CPU (gloo) and GPU (NCCL) alike as long as they are built with CPU initialisation and never asked to
gather outputs. Two things of megatron-core need CUDA and are replaced here: the weight initialisation
(done by `trainer.model.init` from the seed, layout-independent, for every device) and the RNG tracker
(dropout uses DeepSpeed's accelerator-agnostic tracker, see `dropout`).

Every sliced parameter carries megatron's `tensor_model_parallel = True`, `partition_dim` and
`partition_stride`: DeepSpeed's gradient-norm uses them to count replicated parameters once.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from deepspeed.runtime.activation_checkpointing import checkpointing as ds_checkpointing
from megatron.core import parallel_state
from megatron.core.model_parallel_config import ModelParallelConfig
from megatron.core.tensor_parallel import layers as mcore_layers
from megatron.core.tensor_parallel.cross_entropy import vocab_parallel_cross_entropy as _mcore_cross_entropy
from megatron.core.tensor_parallel.utils import VocabUtility

__all__ = [
    "ColumnParallelLinear",
    "RowParallelLinear",
    "VocabParallelEmbedding",
    "dropout",
    "model_parallel_rng_context",
    "tensor_parallel_rank",
    "tensor_parallel_world_size",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_logits",
    "vocab_range",
]


def tensor_parallel_rank() -> int:
    return parallel_state.get_tensor_model_parallel_rank()


def tensor_parallel_world_size() -> int:
    return parallel_state.get_tensor_model_parallel_world_size()


def tensor_parallel_group() -> torch.distributed.ProcessGroup:
    return parallel_state.get_tensor_model_parallel_group()


def vocab_range(padded_vocab: int) -> tuple[int, int]:
    """[start, end) of the vocabulary rows held by this tensor-parallel rank."""
    return VocabUtility.vocab_range_from_global_vocab_size(
        padded_vocab, tensor_parallel_rank(), tensor_parallel_world_size()
    )


def _config(params_dtype: torch.dtype) -> ModelParallelConfig:
    return ModelParallelConfig(
        tensor_model_parallel_size=tensor_parallel_world_size(),
        use_cpu_initialization=True,  # allocate on the host; the engine moves the module to the device
        perform_initialization=False,  # trainer.model.init fills the weights from the seed
        params_dtype=params_dtype,
    )


def _mark_sliced(param: torch.Tensor, dim: int) -> None:
    # megatron-core sets these only when it initialises the weight itself
    if not hasattr(param, "tensor_model_parallel"):
        mcore_layers.set_tensor_model_parallel_attributes(param, is_parallel=True, dim=dim, stride=1)


class ColumnParallelLinear(mcore_layers.ColumnParallelLinear):
    """Y_i = X A_i + b_i: the weight's output rows are sliced; the output stays sliced (no gather)."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 params_dtype: torch.dtype = torch.float32):
        super().__init__(in_features, out_features, config=_config(params_dtype), init_method=_no_init,
                         bias=bias, gather_output=False, tp_group=tensor_parallel_group())
        _mark_sliced(self.weight, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # megatron returns (output, bias)
        return super().forward(x)[0]


class RowParallelLinear(mcore_layers.RowParallelLinear):
    """Y = sum_i X_i A_i + b: the weight's input columns are sliced, the input arrives sliced, the output
    is all-reduced; the bias is replicated and added once after the reduction."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 params_dtype: torch.dtype = torch.float32):
        super().__init__(in_features, out_features, config=_config(params_dtype), init_method=_no_init,
                         bias=bias, input_is_parallel=True, skip_bias_add=False, tp_group=tensor_parallel_group())
        _mark_sliced(self.weight, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[0]


class VocabParallelEmbedding(mcore_layers.VocabParallelEmbedding):
    """Token embedding with the (padded) vocabulary rows sliced across tensor-parallel ranks."""

    def __init__(self, padded_vocab: int, hidden: int, *, params_dtype: torch.dtype = torch.float32):
        super().__init__(padded_vocab, hidden, init_method=_no_init, config=_config(params_dtype),
                         tp_group=tensor_parallel_group())
        _mark_sliced(self.weight, dim=0)


def _no_init(_tensor: torch.Tensor) -> None:
    """megatron-core asks for an init method; weights are filled by trainer.model.init instead."""


def vocab_parallel_logits(hidden: torch.Tensor, embedding_weight: torch.Tensor) -> torch.Tensor:
    """Logits of this rank's vocabulary slice, from the (tied) embedding weight. The backward all-reduces
    the hidden-state gradient across tensor-parallel ranks (megatron's async dgrad all-reduce)."""
    return mcore_layers.linear_with_grad_accumulation_and_async_allreduce(
        input=hidden,
        weight=embedding_weight,
        bias=None,
        gradient_accumulation_fusion=False,
        allreduce_dgrad=tensor_parallel_world_size() > 1,
        sequence_parallel=False,
        tp_group=tensor_parallel_group(),
    )


def vocab_parallel_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-token loss from vocabulary-sliced logits (megatron-core; the softmax is reduced across ranks)."""
    return _mcore_cross_entropy(logits, target)


def dropout(x: torch.Tensor, p: float, training: bool, *, sliced: bool) -> torch.Tensor:
    """Dropout whose mask is identical on tensor-parallel ranks for replicated activations and differs on
    sliced ones (megatron's rule), using DeepSpeed's RNG tracker, which works on CPU as well as CUDA and is
    the one its activation checkpointing restores on recomputation."""
    if p == 0.0 or not training:
        return x
    if not sliced:
        return F.dropout(x, p, training=True)
    with ds_checkpointing.get_cuda_rng_tracker().fork():
        return F.dropout(x, p, training=True)


def model_parallel_rng_context(enabled: bool):
    """Context for ops with built-in randomness (attention-probability dropout inside
    scaled_dot_product_attention) running on sliced heads."""
    if not enabled:
        return contextlib.nullcontext()
    return ds_checkpointing.get_cuda_rng_tracker().fork()
