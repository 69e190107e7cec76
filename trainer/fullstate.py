"""A checkpoint's tensors independent of its layout: read any TP x PP x DP checkpoint into full tensors,
and cut full tensors into the files of another layout.

Names. A full tensor is named as trainer.model.init names it ("embedding.word.weight",
"layers.3.qkv.weight", "final_norm.bias"); DeepSpeed's files name the same tensor by pipeline layer
index ("layer_05-model_01-model_states.pt", key "qkv.weight"; in its optimizer files "5.qkv.weight",
and the tied word embedding "tied_modules.embed.embedding.weight"). Layer files depend on the
tensor-parallel rank only, never on the pipeline stage, so a change of pipeline degree moves no
tensor between files; only the per-stage engine files (mp_rank_XX_model_states.pt) are rewritten.

Tensor slicing. Each sliced tensor is cut along one dimension (megatron's `partition_dim`): the word
embedding by vocabulary rows (padded to a multiple of make_vocab_size_divisible_by x TP: the padding is
dropped when joining and zeros are added when splitting), QKV and the first MLP layer by output rows
(whole heads: QKV rows are ordered head by head), the attention output and second MLP layer by input
columns. Everything else is replicated on tensor-parallel ranks, and must be identical there.

Optimizer state. DeepSpeed's ZeRO-1 files hold each data-parallel rank's slice of the flattened
parameters of a (stage, tensor rank), in the order of `param_shapes`; a one-process run (no ZeRO)
keeps torch's optimizer state_dict in mp_rank_00_model_states.pt. Both are read into per-tensor Adam
moments (`exp_avg`, `exp_avg_sq`) joined like the weights. A resharded checkpoint stores them per layer
file, independent of the data-parallel degree (optimizer/layer_XX-model_YY.pt), which the trainer
loads into whatever ZeRO partitioning the resumed launch has (trainer.checkpoint).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer.checkpoint import STATE_FILE, TOKENIZER_FILE, CheckpointError, TrainerState, latest_checkpoint, read_state
from trainer.config import TrainConfig, from_dict

WORD_EMBEDDING = "embedding.word.weight"
TIED_DS_NAME = "tied_modules.embed.embedding.weight"
OPTIMIZER_DIR = "optimizer"
ADAM_KEYS = ("exp_avg", "exp_avg_sq")
# megatron's partition_dim of each sliced tensor (by the name's last two parts); the rest is replicated
PARTITION_DIM = {"qkv.weight": 0, "qkv.bias": 0, "fc1.weight": 0, "fc1.bias": 0,
                 "attention_out.weight": 1, "fc2.weight": 1}


def partition_dim(full_name: str) -> int | None:
    if full_name == WORD_EMBEDDING:
        return 0
    return PARTITION_DIM.get(".".join(full_name.split(".")[-2:]))


def full_name(layer: int, key: str, num_layers: int) -> str:
    """The full tensor name of `key` in pipeline layer `layer` (DeepSpeed's layer index)."""
    if layer == 0:
        return "embedding.word." + key.removeprefix("embedding.")
    if layer == 1:
        return "embedding.position." + key
    if layer < num_layers + 2:
        return f"layers.{layer - 2}.{key}"
    if layer == num_layers + 2:
        return "final_norm." + key
    raise ValueError(f"pipeline layer {layer} holds no tensors")


def layer_of(name: str, num_layers: int) -> tuple[int, str]:
    """(DeepSpeed layer index, key in its layer file) of a full tensor name."""
    if name.startswith("embedding.word."):
        return 0, "embedding." + name.removeprefix("embedding.word.")
    if name.startswith("embedding.position."):
        return 1, name.removeprefix("embedding.position.")
    if name.startswith("final_norm."):
        return num_layers + 2, name.removeprefix("final_norm.")
    match = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
    if not match:
        raise ValueError(f"unknown tensor name {name!r}")
    return int(match.group(1)) + 2, match.group(2)


def ds_param_name(layer: int, key: str) -> str:
    """The name DeepSpeed's optimizer files and the pipeline module use."""
    return TIED_DS_NAME if layer == 0 else f"{layer}.{key}"


def layer_of_ds_name(name: str) -> tuple[int, str]:
    """(layer index, key in its layer file) of a pipeline module parameter name."""
    if name == TIED_DS_NAME:
        return 0, "embedding.weight"
    layer, key = name.split(".", 1)
    return int(layer), key


def layer_file(ckpt: Path, layer: int, tp_rank: int) -> Path:
    return ckpt / f"layer_{layer:02d}-model_{tp_rank:02d}-model_states.pt"


def optimizer_file(ckpt: Path, layer: int, tp_rank: int) -> Path:
    return ckpt / OPTIMIZER_DIR / f"layer_{layer:02d}-model_{tp_rank:02d}.pt"


@dataclass
class FullState:
    """A whole model (and optionally its Adam state), layout-free."""

    trainer_state: TrainerState
    params: dict[str, torch.Tensor]  # word embedding without vocabulary padding
    optimizer: dict[str, dict[str, torch.Tensor]] | None = None  # name -> {exp_avg, exp_avg_sq}
    optimizer_step: int | None = None
    layer_keys: dict[int, list[str]] = field(default_factory=dict)  # each layer file's keys, in order

    @property
    def config(self) -> TrainConfig:
        return from_dict(self.trainer_state.config)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder (step_XXXXXXXX), or a run folder / checkpoints folder: its newest checkpoint."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    for root in (path / "checkpoints", path):
        found = latest_checkpoint(root)
        if found is not None:
            return found
    raise CheckpointError(f"no complete checkpoint at {path} (a step_XXXXXXXX folder with {STATE_FILE}, "
                          "or a run folder holding one)")


def _load(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint is incomplete")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # truncated or not a torch file
        raise CheckpointError(f"{path} cannot be read ({type(error).__name__}: {error})") from error


def expected_shape(name: str, cfg: TrainConfig, tensor: int) -> tuple[int, ...]:
    """Shape of `name`'s shard on one of `tensor` tensor-parallel ranks."""
    m = cfg.model
    h = m.hidden_size
    last = name.rsplit(".", 2)[-2:]
    key = ".".join(last)
    if name == WORD_EMBEDDING:
        full = (m.padded_vocab_size(tensor), h)
    elif name == "embedding.position.weight":
        full = (m.seq_length, h)
    else:
        full = {"qkv.weight": (3 * h, h), "qkv.bias": (3 * h,), "attention_out.weight": (h, h),
                "fc1.weight": (4 * h, h), "fc1.bias": (4 * h,), "fc2.weight": (h, 4 * h)}.get(key, (h,))
    dim = partition_dim(name)
    if dim is None:
        return full
    shard = list(full)
    shard[dim] //= tensor
    return tuple(shard)


def _join(name: str, shards: list[torch.Tensor], files: list[Path], vocab: int) -> torch.Tensor:
    dim = partition_dim(name)
    if dim is None:
        for other, path in zip(shards[1:], files[1:]):
            if not torch.equal(other, shards[0]):
                raise CheckpointError(f"{path}: {name} differs from its copy in {files[0]} (replicated on tensor-"
                                      "parallel ranks): the shards are not from the same checkpoint")
        return shards[0]
    full = torch.cat(shards, dim=dim)
    return full[:vocab] if name == WORD_EMBEDDING else full


def split(name: str, full: torch.Tensor, cfg: TrainConfig, tensor: int) -> list[torch.Tensor]:
    """`tensor` shards of a full tensor for a model of config `cfg`."""
    dim = partition_dim(name)
    if dim is None:
        return [full.clone() for _ in range(tensor)]
    if name == WORD_EMBEDDING:
        m = cfg.model
        padded = m.padded_vocab_size(tensor)
        full = torch.cat([full, full.new_zeros(padded - full.shape[0], *full.shape[1:])])
    return [piece.clone() for piece in torch.chunk(full, tensor, dim=dim)]


def read_model(path: str | Path, with_optimizer: bool = False) -> FullState:
    """Every tensor of a checkpoint of any layout, joined; refuses a missing or mismatched shard."""
    ckpt = resolve_checkpoint(path)
    state = read_state(ckpt)
    cfg = from_dict(state.config)
    tensor, layers = cfg.parallel.tensor, cfg.model.num_layers
    params: dict[str, torch.Tensor] = {}
    layer_keys: dict[int, list[str]] = {}
    for layer in range(layers + 3):
        files = [layer_file(ckpt, layer, t) for t in range(tensor)]
        dicts = [_load(f) for f in files]
        layer_keys[layer] = list(dicts[0])
        for key in dicts[0]:
            if dicts[0][key] is None:  # megatron's empty `_extra_state`
                continue
            name = full_name(layer, key, layers)
            shards = []
            for d, f in zip(dicts, files):
                if key not in d or d[key] is None:
                    raise CheckpointError(f"{f}: {key} is missing (its other tensor-parallel shards have it): "
                                          "a mismatched shard")
                want = expected_shape(name, cfg, tensor)
                if tuple(d[key].shape) != want:
                    raise CheckpointError(f"{f}: {key} has shape {tuple(d[key].shape)}, but a TP{tensor} shard of "
                                          f"this model ({ckpt / STATE_FILE}) has {want}: a mismatched shard")
                shards.append(d[key])
            params[name] = _join(name, shards, files, cfg.model.vocab_size)
    full = FullState(trainer_state=state, params=params, layer_keys=layer_keys)
    if with_optimizer:
        full.optimizer, full.optimizer_step = read_optimizer(ckpt, state, cfg, params)
    return full


def read_optimizer(ckpt: Path, state: TrainerState, cfg: TrainConfig,
                   params: dict[str, torch.Tensor]) -> tuple[dict[str, dict[str, torch.Tensor]], int]:
    tensor, layers = cfg.parallel.tensor, cfg.model.num_layers
    per_rank: list[dict[str, dict[str, torch.Tensor]]] = [{} for _ in range(tensor)]  # ds name -> moments
    step = None
    if (ckpt / OPTIMIZER_DIR).is_dir():  # written by trainer.reshard
        for layer in range(layers + 3):
            for t in range(tensor):
                for key, moments in _load(optimizer_file(ckpt, layer, t)).items():
                    per_rank[t][ds_param_name(layer, key)] = moments
        step = state.optimizer_step
    else:
        for mp in range(tensor * cfg.parallel.pipeline):
            rank_step, moments = _native_moments(ckpt, mp, state)
            per_rank[mp % tensor].update(moments)
            step = rank_step if step is None else step
            if rank_step != step:
                raise CheckpointError(f"{ckpt}: optimizer step counts differ between pipeline stages")
    optimizer = {}
    for name in params:
        layer, key = layer_of(name, layers)
        ds_name = ds_param_name(layer, key)
        files = [optimizer_file(ckpt, layer, t) for t in range(tensor)]
        optimizer[name] = {}
        for adam_key in ADAM_KEYS:
            shards = []
            for t in range(tensor):
                if ds_name not in per_rank[t]:
                    raise CheckpointError(f"{ckpt}: no optimizer state for {ds_name} on tensor rank {t}")
                shards.append(per_rank[t][ds_name][adam_key].reshape(expected_shape(name, cfg, tensor)))
            optimizer[name][adam_key] = _join(name, shards, files, cfg.model.vocab_size)
    return optimizer, int(step)


def _native_moments(ckpt: Path, mp: int, state: TrainerState) -> tuple[int, dict[str, dict[str, torch.Tensor]]]:
    """Adam moments of one (stage, tensor rank) of a checkpoint written by DeepSpeed, by DeepSpeed name."""
    engine_file = ckpt / f"mp_rank_{mp:02d}_model_states.pt"
    engine_state = _load(engine_file)
    if engine_state.get("optimizer") is not None:  # one process, no ZeRO: torch's state_dict
        return _unsharded_moments(engine_state["optimizer"], engine_state, engine_file)
    shapes = engine_state.get("param_shapes")
    dp = engine_state.get("dp_world_size") or state.data_parallel or 1
    files = [ckpt / f"zero_pp_rank_{d}_mp_rank_{mp:02d}_optim_states.pt" for d in range(dp)]
    parts = [_load(f)["optimizer_state_dict"] for f in files]
    if not shapes:
        raise CheckpointError(f"{engine_file} lists no parameter shapes: cannot cut its ZeRO optimizer state")
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
                                          f"the parameters of {engine_file}: a missing or mismatched shard")
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
    if cfg.model.num_attention_heads % tensor:
        raise CheckpointError(f"{cfg.model.num_attention_heads} attention heads cannot be split over TP {tensor}")
    if cfg.model.num_layers < pipeline:
        raise CheckpointError(f"{cfg.model.num_layers} layers cannot fill {pipeline} pipeline stages")
    cfg.parallel.tensor, cfg.parallel.pipeline = tensor, pipeline
    layers = cfg.model.num_layers
    tmp = out_ckpt.with_name(f".{out_ckpt.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / OPTIMIZER_DIR).mkdir(parents=True)
    for layer in range(layers + 3):
        keys = full.layer_keys.get(layer) or _default_keys(layer, layers)
        shards: list[dict] = [{} for _ in range(tensor)]
        moments: list[dict] = [{} for _ in range(tensor)]
        for key in keys:
            name = full_name(layer, key, layers)
            if name not in full.params:
                for d in shards:
                    d[key] = None
                continue
            for t, piece in enumerate(split(name, full.params[name], cfg, tensor)):
                shards[t][key] = piece
            if full.optimizer is not None:
                for adam_key in ADAM_KEYS:
                    for t, piece in enumerate(split(name, full.optimizer[name][adam_key], cfg, tensor)):
                        moments[t].setdefault(key, {})[adam_key] = piece
        for t in range(tensor):
            torch.save(shards[t], layer_file(tmp, layer, t))
            if full.optimizer is not None:
                torch.save(moments[t], optimizer_file(tmp, layer, t))
    engine_template = _load(source / "mp_rank_00_model_states.pt") if source is not None else {}
    for mp in range(tensor * pipeline):
        engine_state = {k: v for k, v in engine_template.items() if k not in ("optimizer", "param_shapes")}
        engine_state.update(module=None, optimizer=None, param_shapes=None, buffer_names=[], mp_world_size=tensor * pipeline,
                            checkpoint_parallel_dimensions={"pp_degree": pipeline, "tp_degree": tensor})
        torch.save(engine_state, tmp / f"mp_rank_{mp:02d}_model_states.pt")
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
    (tmp / STATE_FILE).write_text(json.dumps(state.__dict__, indent=1, sort_keys=True))
    if out_ckpt.exists():
        shutil.rmtree(out_ckpt)
    tmp.rename(out_ckpt)
    (out_ckpt.parent / "latest").write_text(out_ckpt.name)


def _default_keys(layer: int, num_layers: int) -> list[str]:
    if layer == 0:
        return ["embedding.weight"]
    if layer == 1 or layer == num_layers + 2:
        return ["weight"] if layer == 1 else ["weight", "bias"]
    return ["ln_attention.weight", "ln_attention.bias", "qkv.weight", "qkv.bias", "qkv._extra_state",
            "attention_out.weight", "attention_out.bias", "attention_out._extra_state", "ln_mlp.weight", "ln_mlp.bias",
            "fc1.weight", "fc1.bias", "fc1._extra_state", "fc2.weight", "fc2.bias", "fc2._extra_state"]
