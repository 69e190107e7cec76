"""The one table of a model's tensors in DeepSpeed's checkpoint files, derived from the model itself.

For every full tensor (named by its layer's `full_name`, e.g. "layers.3.qkv.weight"): the pipeline layer
whose file holds it, its key there, its name in the pipeline module (optimizer state), its full shape
and its split dimension (the parameter's megatron `partition_dim`; None: replicated). The layers are
built on the meta device, so the table costs no memory for any model size. File names are here too.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from deepspeed.pipe import TiedLayerSpec

from trainer.config import ModelConfig
from trainer.model import tensor_parallel as tp
from trainer.model.gpt import gpt_layer_specs, model_shape
from trainer.parallel.groups import groups_for_building

OPTIMIZER_DIR = "optimizer"
ADAM_KEYS = ("exp_avg", "exp_avg_sq")


def layer_file(ckpt: Path, layer: int, tp_rank: int) -> Path:
    """DeepSpeed's weights of one pipeline layer on one tensor-parallel rank (the same for any PP)."""
    return ckpt / f"layer_{layer:02d}-model_{tp_rank:02d}-model_states.pt"


def optimizer_file(ckpt: Path, layer: int, tp_rank: int) -> Path:
    """A resharded checkpoint's Adam moments of one layer file."""
    return ckpt / OPTIMIZER_DIR / f"layer_{layer:02d}-model_{tp_rank:02d}.pt"


def engine_file(ckpt: Path, mp_rank: int) -> Path:
    """DeepSpeed's per (stage, tensor rank) engine state."""
    return ckpt / f"mp_rank_{mp_rank:02d}_model_states.pt"


def zero_file(ckpt: Path, dp_rank: int, mp_rank: int) -> Path:
    """DeepSpeed's ZeRO-1 optimizer partition of one data-parallel rank of a (stage, tensor rank)."""
    return ckpt / f"zero_pp_rank_{dp_rank}_mp_rank_{mp_rank:02d}_optim_states.pt"


@dataclass(frozen=True)
class TensorEntry:
    name: str  # full, layout-independent name
    layer: int  # DeepSpeed's pipeline layer index: the layer file
    key: str  # key in the layer file
    ds_name: str  # the pipeline module's parameter name ("5.qkv.weight", "tied_modules.embed.embedding.weight")
    shape: tuple[int, ...]  # full shape, vocabulary unpadded
    dim: int | None  # split dimension across tensor-parallel ranks; None: replicated
    vocab_rows: bool  # rows are the vocabulary, padded for tensor parallelism (the word embedding)

    def padded_shape(self, model: ModelConfig, tensor: int) -> tuple[int, ...]:
        """The full shape with the vocabulary padding of TP `tensor`."""
        full = list(self.shape)
        if self.vocab_rows:
            full[0] = model.padded_vocab_size(tensor)
        return tuple(full)

    def shard_shape(self, model: ModelConfig, tensor: int) -> tuple[int, ...]:
        """The shape of one of `tensor` tensor-parallel shards."""
        shard = list(self.padded_shape(model, tensor))
        if self.dim is not None:
            shard[self.dim] //= tensor
        return tuple(shard)


@dataclass(frozen=True)
class TensorTable:
    tensors: dict[str, TensorEntry]  # by full name, in file order
    layer_keys: dict[int, tuple[str, ...]]  # every key of each layer file in order, megatron's `_extra_state` too

    def at(self, layer: int, key: str) -> TensorEntry | None:
        """The tensor under `key` in layer file `layer`; None for a key without one (`_extra_state`)."""
        return self._by_place.get((layer, key))

    def of_ds_name(self, ds_name: str) -> TensorEntry:
        return self._by_ds_name[ds_name]

    @functools.cached_property
    def _by_place(self) -> dict[tuple[int, str], TensorEntry]:
        return {(e.layer, e.key): e for e in self.tensors.values()}

    @functools.cached_property
    def _by_ds_name(self) -> dict[str, TensorEntry]:
        return {e.ds_name: e for e in self.tensors.values()}


def tensor_table(model: ModelConfig) -> TensorTable:
    """The table of the model `model` describes (the same for every layout)."""
    return _table(dataclasses.astuple(model))


@functools.lru_cache(maxsize=8)
def _table(model_fields: tuple) -> TensorTable:
    model = ModelConfig(*model_fields)
    tensors: dict[str, TensorEntry] = {}
    layer_keys: dict[int, tuple[str, ...]] = {}
    tied_seen: set[str] = set()
    with groups_for_building(), torch.device("meta"):
        world = tp.tensor_parallel_world_size()  # a live engine's TP, else 1: shards are scaled to full shapes
        for layer, spec in enumerate(gpt_layer_specs(model_shape(model, world, seed=0))):
            tied = isinstance(spec, TiedLayerSpec)
            if tied and spec.key in tied_seen:  # the output layer: the tied embedding once more, no file
                continue
            module = spec.build()
            vocab_rows = {f"{name}.weight" for name, m in module.named_modules()
                          if isinstance(m, tp.VocabParallelEmbedding)}
            layer_keys[layer] = tuple(module.state_dict(keep_vars=True))
            for key, param in module.named_parameters():
                dim = int(param.partition_dim) if getattr(param, "tensor_model_parallel", False) else None
                shape = list(param.shape)
                if dim is not None:
                    shape[dim] *= world
                if key in vocab_rows:
                    shape[0] = model.vocab_size
                name = module.full_name(key)
                tensors[name] = TensorEntry(name=name, layer=layer, key=key, shape=tuple(shape), dim=dim,
                                            ds_name=f"tied_modules.{spec.key}.{key}" if tied else f"{layer}.{key}",
                                            vocab_rows=key in vocab_rows)
            if tied:
                tied_seen.add(spec.key)
    return TensorTable(tensors=tensors, layer_keys=layer_keys)
