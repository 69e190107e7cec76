"""A checkpoint's tensors independent of its layout: read any TP x PP x DP checkpoint into full tensors,
and cut full tensors into the files of another layout (trainer.reshard). Every name, file, key and split
dimension comes from the model's table (trainer.checkpoint.layout); docs/contracts.md has the details.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from blending.atomic import publish_folder, write_text_atomic
from trainer.checkpoint.data_only import load_data
from trainer.checkpoint.layout import (
    ADAM_KEYS,
    OPTIMIZER_DIR,
    TensorEntry,
    TensorTable,
    engine_file,
    layer_file,
    optimizer_file,
    tensor_table,
    zero_file,
)
from trainer.checkpoint.state import (
    STATE_FILE,
    TOKENIZER_FILE,
    CheckpointError,
    TrainerState,
    read_state,
    resolve_checkpoint,
    state_json,
)
from trainer.config import ConfigError, TrainConfig, check_model_shape, from_dict


@dataclass
class FullState:
    """A whole model (and optionally its Adam state), layout-free."""

    trainer_state: TrainerState
    params: dict[str, torch.Tensor]  # by full name; the word embedding without vocabulary padding
    optimizer: dict[str, dict[str, torch.Tensor]] | None = None  # name -> {exp_avg, exp_avg_sq}
    optimizer_step: int | None = None

    @property
    def config(self) -> TrainConfig:
        return from_dict(self.trainer_state.config)

    @property
    def table(self) -> TensorTable:
        return tensor_table(self.config.model)


def join(entry: TensorEntry, shards: list[torch.Tensor], files: list[Path]) -> torch.Tensor:
    """The full tensor of its tensor-parallel shards (the vocabulary padding dropped)."""
    if entry.dim is None:
        for other, path in zip(shards[1:], files[1:]):
            if not torch.equal(other, shards[0]):
                raise CheckpointError(f"{path}: {entry.name} differs from its copy in {files[0]} (replicated on "
                                      "tensor-parallel ranks): the shards are not from the same checkpoint")
        return shards[0]
    full = torch.cat(shards, dim=entry.dim)
    return full[:entry.shape[0]] if entry.vocab_rows else full


def split(entry: TensorEntry, full: torch.Tensor, cfg: TrainConfig, tensor: int) -> list[torch.Tensor]:
    """`tensor` shards of a full tensor for a model of config `cfg` (zero rows added for vocabulary padding)."""
    if entry.dim is None:
        return [full.clone() for _ in range(tensor)]
    if entry.vocab_rows:
        padded = cfg.model.padded_vocab_size(tensor)
        full = torch.cat([full, full.new_zeros(padded - full.shape[0], *full.shape[1:])])
    return [piece.clone() for piece in torch.chunk(full, tensor, dim=entry.dim)]


def read_model(path: str | Path, with_optimizer: bool = False) -> FullState:
    """Every tensor of a checkpoint of any layout, joined; refuses a missing or mismatched shard."""
    ckpt = resolve_checkpoint(path)
    state = read_state(ckpt)
    cfg = from_dict(state.config)
    tensor = cfg.parallel.tensor
    table = tensor_table(cfg.model)
    params: dict[str, torch.Tensor] = {}
    for layer, keys in table.layer_keys.items():
        files = [layer_file(ckpt, layer, t) for t in range(tensor)]
        dicts = [load_data(f) for f in files]
        for key in keys:
            entry = table.at(layer, key)
            if entry is None:  # megatron's empty `_extra_state`
                continue
            want = entry.shard_shape(cfg.model, tensor)
            shards = []
            for d, f in zip(dicts, files):
                if d.get(key) is None:
                    raise CheckpointError(f"{f}: {key} is missing (layer {layer} of this model has it): "
                                          "a mismatched shard")
                if tuple(d[key].shape) != want:
                    raise CheckpointError(f"{f}: {key} has shape {tuple(d[key].shape)}, but a TP{tensor} shard of "
                                          f"this model ({ckpt / STATE_FILE}) has {want}: a mismatched shard")
                shards.append(d[key])
            params[entry.name] = join(entry, shards, files)
    full = FullState(trainer_state=state, params=params)
    if with_optimizer:
        full.optimizer, full.optimizer_step = read_optimizer(ckpt, state, cfg, table)
    return full


def read_optimizer(ckpt: Path, state: TrainerState, cfg: TrainConfig,
                   table: TensorTable) -> tuple[dict[str, dict[str, torch.Tensor]], int]:
    tensor = cfg.parallel.tensor
    per_rank: list[dict[str, dict[str, torch.Tensor]]] = [{} for _ in range(tensor)]  # ds name -> moments
    step = None
    if (ckpt / OPTIMIZER_DIR).is_dir():  # written by trainer.reshard
        for layer in table.layer_keys:
            for t in range(tensor):
                path = optimizer_file(ckpt, layer, t)
                for key, moments in load_data(path).items():
                    entry = table.at(layer, key)
                    if entry is None:
                        raise CheckpointError(f"{path}: {key} is no tensor of layer {layer}: a mismatched shard")
                    per_rank[t][entry.ds_name] = moments
        step = state.optimizer_step
    else:
        for mp in range(tensor * cfg.parallel.pipeline):
            rank_step, moments = _native_moments(ckpt, mp, state)
            per_rank[mp % tensor].update(moments)
            step = rank_step if step is None else step
            if rank_step != step:
                raise CheckpointError(f"{ckpt}: optimizer step counts differ between pipeline stages")
    optimizer = {}
    for entry in table.tensors.values():
        files = [optimizer_file(ckpt, entry.layer, t) for t in range(tensor)]
        optimizer[entry.name] = {}
        for adam_key in ADAM_KEYS:
            shards = []
            for t in range(tensor):
                if entry.ds_name not in per_rank[t]:
                    raise CheckpointError(f"{ckpt}: no optimizer state for {entry.ds_name} on tensor rank {t}")
                shards.append(per_rank[t][entry.ds_name][adam_key].reshape(entry.shard_shape(cfg.model, tensor)))
            optimizer[entry.name][adam_key] = join(entry, shards, files)
    return optimizer, int(step)


def _native_moments(ckpt: Path, mp: int, state: TrainerState) -> tuple[int, dict[str, dict[str, torch.Tensor]]]:
    """Adam moments of one (stage, tensor rank) of a checkpoint written by DeepSpeed, by DeepSpeed name."""
    engine_path = engine_file(ckpt, mp)
    engine_state = load_data(engine_path)
    if engine_state.get("optimizer") is not None:  # one process, no ZeRO: torch's state_dict
        return _unsharded_moments(engine_state["optimizer"], engine_state, engine_path)
    shapes = engine_state.get("param_shapes")
    dp = engine_state.get("dp_world_size") or state.data_parallel or 1
    files = [zero_file(ckpt, d, mp) for d in range(dp)]
    parts = [load_data(f)["optimizer_state_dict"] for f in files]
    if not shapes:
        raise CheckpointError(f"{engine_path} lists no parameter shapes: cannot cut its ZeRO optimizer state")
    moments: dict[str, dict[str, torch.Tensor]] = {}
    step = None
    for group, names in enumerate(shapes):
        states = [p["base_optimizer_state"]["state"][group] for p in parts]
        step = int(states[0]["step"])
        for adam_key in ADAM_KEYS:
            flat = torch.cat([s[adam_key].flatten() for s in states])  # padding, if any, sits at the end
            offset = 0
            for name, shape in names.items():
                numel = int(torch.Size(shape).numel())
                if offset + numel > flat.numel():
                    raise CheckpointError(f"{files[-1]}: ZeRO partitions hold {flat.numel()} values, fewer than "
                                          f"the parameters of {engine_path}: a missing or mismatched shard")
                moments.setdefault(name, {})[adam_key] = flat[offset:offset + numel].view(shape).clone()
                offset += numel
    return step, moments


def _unsharded_moments(optimizer_state: dict, engine_state: dict, where: Path):
    """torch's optimizer state_dict (indices in parameter-group order: matrices first, then vectors, each in
    the pipeline module's parameter order) by DeepSpeed name."""
    names = engine_state.get("param_names_in_groups")
    if names is None:
        raise CheckpointError(f"{where}: a one-process checkpoint without parameter names; reshard needs them")
    moments, step = {}, 0
    for group, group_names in zip(optimizer_state["param_groups"], names):
        for index, name in zip(group["params"], group_names):
            entry = optimizer_state["state"].get(index)
            if entry is None:
                raise CheckpointError(f"{where}: no optimizer state for {name}")
            moments[name] = {k: entry[k].clone() for k in ADAM_KEYS}
            step = int(entry["step"])
    return step, moments


def write_layout(full: FullState, out_ckpt: Path, tensor: int, pipeline: int, source: Path | None = None) -> None:
    """A complete checkpoint of `full` for TP `tensor` x PP `pipeline` (any DP at resume) in `out_ckpt`."""
    cfg = full.config
    try:
        check_model_shape(cfg.model, tensor, pipeline)
    except ConfigError as error:
        raise CheckpointError(f"cannot cut this model for TP{tensor} x PP{pipeline}: {error}") from error
    cfg.parallel.tensor, cfg.parallel.pipeline = tensor, pipeline
    table = full.table
    tmp = out_ckpt.with_name(f".{out_ckpt.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a reshard that was killed
    (tmp / OPTIMIZER_DIR).mkdir(parents=True)
    for layer, keys in table.layer_keys.items():
        shards: list[dict] = [{} for _ in range(tensor)]
        moments: list[dict] = [{} for _ in range(tensor)]
        for key in keys:
            entry = table.at(layer, key)
            if entry is None:
                for d in shards:
                    d[key] = None
                continue
            for t, piece in enumerate(split(entry, full.params[entry.name], cfg, tensor)):
                shards[t][key] = piece
            if full.optimizer is not None:
                for adam_key in ADAM_KEYS:
                    for t, piece in enumerate(split(entry, full.optimizer[entry.name][adam_key], cfg, tensor)):
                        moments[t].setdefault(key, {})[adam_key] = piece
        for t in range(tensor):
            torch.save(shards[t], layer_file(tmp, layer, t))
            if full.optimizer is not None:
                torch.save(moments[t], optimizer_file(tmp, layer, t))
    engine_template = load_data(engine_file(source, 0)) if source is not None else {}
    for mp in range(tensor * pipeline):
        engine_state = {k: v for k, v in engine_template.items() if k not in ("optimizer", "param_shapes")}
        engine_state.update(module=None, optimizer=None, param_shapes=None, buffer_names=[], mp_world_size=tensor * pipeline,
                            checkpoint_parallel_dimensions={"pp_degree": pipeline, "tp_degree": tensor})
        torch.save(engine_state, engine_file(tmp, mp))
    if full.optimizer is None:
        shutil.rmtree(tmp / OPTIMIZER_DIR)
    state = TrainerState(**{**full.trainer_state.__dict__})
    state.config = {**state.config, "parallel": {**state.config["parallel"], "tensor": tensor, "pipeline": pipeline}}
    state.data_parallel = None  # the optimizer state is cut per layer: any data-parallel degree resumes it
    state.optimizer_step = full.optimizer_step
    old = full.trainer_state
    state.resharded_from = f"TP{old.config['parallel']['tensor']}xPP{old.config['parallel']['pipeline']}" + (
        f"xDP{old.data_parallel}" if old.data_parallel else "")
    if source is not None and (source / TOKENIZER_FILE).is_file():
        shutil.copy2(source / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
    (tmp / STATE_FILE).write_text(state_json(state))
    publish_folder(tmp, out_ckpt)  # an existing one stays until the new one is in place
    write_text_atomic(out_ckpt.parent / "latest", out_ckpt.name)
