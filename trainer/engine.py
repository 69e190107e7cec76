"""The trainer engine: GPT with Megatron tensor slicing x DeepSpeed pipeline (1F1B) x ZeRO-1 data parallelism.

Usage (every rank of a `deepspeed --module ...` or `torchrun -m ...` job runs the same code):

    from trainer.engine import build_engine
    engine = build_engine(cfg)                  # cfg: trainer.config.TrainConfig
    engine.set_global_batch_size(256)           # batch ramp-up: changes gradient accumulation only
    engine.set_lr(lr)                           # before a step, from the run's schedule
    loss = engine.train_batch(data_iter)        # one optimizer step; the global mean loss on every rank
    loss = engine.eval_batch(data_iter, num_micro_batches=4)
    engine.save_checkpoint(dir, tag="step100", client_state={...})   # DeepSpeed's files only
    client_state = engine.load_checkpoint(dir, tag=None)    # None: the tag in dir/latest

A run's checkpoints go through trainer.checkpoint (atomic folders, RNG states, trainer state, resharded
checkpoints), which calls this class's checkpoint and RNG methods, never DeepSpeed's engine itself.

Data: `data_iter` yields one micro-batch per `next()`: an `(inputs, labels)` pair where
inputs = tokens[:, :-1] and labels = tokens[:, 1:], int64 [micro_batch_size, seq], seq <= the model's
seq_length and the same on every step (pipeline stages exchange activations of a shape fixed at the first
step); labels may be `(labels, loss_mask)` with a float mask (0 = ignore the token).
A step pulls `gradient_accumulation_steps` micro-batches. Only the first and the last pipeline stage read
data (`engine.needs_data`); other ranks may pass None. Every tensor-parallel rank of a replica reads the
same micro-batches; data-parallel replica `engine.data_parallel_rank` of `engine.data_parallel_size`
reads its own share (e.g. global samples [step * global_batch + dp_rank * per_replica, ...)).

The model's weights are defined by `cfg.seed` independently of the layout (trainer.model.init), so any
TP x PP x DP layout computes the same losses as one process. The rank placement table
rank -> (node, pp, dp, tp) is printed by rank 0 at start and kept in `engine.placement`; launchers must
number ranks node by node (`deepspeed` with a hostfile, `torchrun --nnodes N --node-rank i` do), so that
tensor-parallel ranks share a node, data-parallel replicas come next and pipeline stages span nodes.

Layout: tensor = cfg.parallel.tensor, pipeline = cfg.parallel.pipeline, data = world size / (tensor x
pipeline). Optimizer: torch's AdamW (cfg.optimizer), weight decay on matrices only, global-norm clipping;
ZeRO stage cfg.parallel.zero_stage across data-parallel replicas (a one-process job runs unsharded).
Transformer blocks are recomputed in backward every cfg.parallel.activation_checkpoint_interval blocks
(0: never). Dropout (cfg.model.dropout, default 0) draws from DeepSpeed's RNG tracker: masks are shared by
tensor-parallel ranks on replicated activations, distinct on sliced heads, reproduced on recomputation.
Precision: cfg.precision "fp32" or "bf16" (DeepSpeed's bf16 optimizer keeps fp32 master weights).
"""

from __future__ import annotations

import functools
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import deepspeed
import numpy as np
import torch
import torch.distributed as dist
from deepspeed.pipe import PipelineModule
from deepspeed.runtime.utils import clip_grad_norm_
from megatron.core import parallel_state

from trainer.checkpoint.data_only import load_data
from trainer.config import TrainConfig, merge_deepspeed_json
from trainer.model.gpt import (
    GPTLoss,
    ModelShape,
    gpt_layer_specs,
    model_shape,
    param_names_in_groups,
    weight_decay_groups,
)
from trainer.parallel.groups import (
    compare_groups,
    deepspeed_group_ranks,
    init_distributed,
    init_megatron_groups,
    megatron_group_ranks,
)
from trainer.parallel.topology import (
    Layout,
    RankPlace,
    build_topology,
    format_rank_table,
    layout_for_world,
    node_of_this_process,
    placement_problems,
    rank_table,
)

PRECISIONS = ("fp32", "bf16")


def effective_zero_stage(cfg: TrainConfig, layout: Layout) -> int:
    """ZeRO-1 shards the optimizer state across data-parallel replicas; a single process has nothing to shard
    and ZeRO's flat buffers would only copy gradients and weights every step, so it runs unsharded. Not so
    for one replica of a TP/PP model: DeepSpeed's unsharded fp32 path leaves the replicated parameters of
    pipeline stages after the first out of the clipping norm, its ZeRO-1 path counts them right."""
    return cfg.parallel.zero_stage if layout.world_size > 1 else 0


def _clip_and_keep_norm(ds_engine) -> None:
    """DeepSpeed's unsharded fp32 clipping, keeping the norm it computes (DeepSpeed drops it)."""
    ds_engine._global_grad_norm = float(clip_grad_norm_(parameters=ds_engine.module.parameters(),
                                                        max_norm=ds_engine.gradient_clipping(), mpu=ds_engine.mpu))


def deepspeed_config(cfg: TrainConfig, layout: Layout, global_batch_size: int) -> dict:
    micro = cfg.batch.micro_batch_size
    per_step = micro * layout.data
    if global_batch_size % per_step:
        raise ValueError(f"global batch {global_batch_size} is not a multiple of micro batch {micro} x "
                         f"data parallel {layout.data}")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision {cfg.precision!r} is not one of {PRECISIONS}")
    return {
        "train_batch_size": global_batch_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": global_batch_size // per_step,
        "gradient_clipping": cfg.optimizer.clip_grad,
        "zero_optimization": {"stage": effective_zero_stage(cfg, layout)},
        "zero_allow_untested_optimizer": True,  # torch's AdamW, the client optimizer
        "bf16": {"enabled": cfg.precision == "bf16"},
        "steps_per_print": sys.maxsize,  # the run logs; DeepSpeed stays quiet
        "wall_clock_breakdown": False,
        "pipeline": {"activation_checkpoint_interval": cfg.parallel.activation_checkpoint_interval},
    }


def build_optimizer(module: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optimizer
    return torch.optim.AdamW(weight_decay_groups(module, o.weight_decay), lr=o.lr, betas=(o.beta1, o.beta2),
                             eps=o.eps)


def build_pipeline_module(shape: ModelShape, layout: Layout, activation_checkpoint_interval: int) -> PipelineModule:
    return PipelineModule(
        layers=gpt_layer_specs(shape),
        topology=build_topology(layout),
        loss_fn=GPTLoss(shape),
        partition_method="type:TransformerBlock",
        activation_checkpoint_interval=activation_checkpoint_interval,
        # only blocks are recomputed: the reentrant checkpoint needs a float input that requires grad
        checkpointable_layers=["TransformerBlock"],
    )


def gather_placement(layout: Layout) -> list[RankPlace]:
    nodes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node_of_this_process())
    return rank_table(build_topology(layout), nodes)


class TrainerEngine:
    """One rank's view of the 3D-parallel model; see the module docstring for the calling convention."""

    def __init__(self, ds_engine, cfg: TrainConfig, layout: Layout, shape: ModelShape,
                 placement: list[RankPlace], groups: dict[str, list[int]]):
        self.ds = ds_engine
        self.cfg = cfg
        self.layout = layout
        self.shape = shape
        self.placement = placement
        self.groups = groups  # this rank's tensor/pipeline/data/embedding groups (global ranks)

    # -- stepping -------------------------------------------------------------------------------------
    def train_batch(self, data_iter: Iterator | None) -> float:
        """Forward and backward over `gradient_accumulation_steps` micro-batches (DeepSpeed's 1F1B
        schedule), gradient all-reduce, clipping and one AdamW step. Returns the batch's mean loss,
        averaged over data-parallel replicas, on every rank."""
        return float(self.ds.train_batch(data_iter))

    def eval_batch(self, data_iter: Iterator | None, num_micro_batches: int | None = None) -> float:
        """Mean loss over `num_micro_batches` micro-batches per replica (default: as in training), no update."""
        return float(self.ds.eval_batch(data_iter, num_micro_batches=num_micro_batches))

    # -- batch size and learning rate -----------------------------------------------------------------
    @property
    def micro_batch_size(self) -> int:
        return self.ds.train_micro_batch_size_per_gpu()

    @property
    def global_batch_size(self) -> int:
        return self.ds.train_batch_size()

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.ds.gradient_accumulation_steps()

    def set_global_batch_size(self, global_batch_size: int) -> None:
        """Samples per optimizer step; a multiple of micro_batch_size x data_parallel_size."""
        self.ds.set_train_batch_size(global_batch_size)

    def set_lr(self, lr: float) -> None:
        for group in self.ds.optimizer.param_groups:
            group["lr"] = lr

    @property
    def lr(self) -> float:
        return self.ds.optimizer.param_groups[0]["lr"]

    @property
    def zero_stage(self) -> int:
        return self.ds.zero_optimization_stage()

    @property
    def grad_norm(self) -> float | None:
        """Global gradient norm of the last step, before clipping."""
        norm = self.ds.get_global_grad_norm()
        return None if norm is None else float(norm)

    # -- where this rank sits -------------------------------------------------------------------------
    @property
    def is_first_stage(self) -> bool:
        return self.ds.is_first_stage()

    @property
    def is_last_stage(self) -> bool:
        return self.ds.is_last_stage()

    @property
    def needs_data(self) -> bool:
        return self.is_first_stage or self.is_last_stage

    @property
    def data_parallel_rank(self) -> int:
        return self.ds.grid.get_data_parallel_rank()

    @property
    def data_parallel_size(self) -> int:
        return self.layout.data

    @property
    def tensor_parallel_rank(self) -> int:
        return self.ds.grid.get_slice_parallel_rank()

    # -- checkpoints ----------------------------------------------------------------------------------
    def save_checkpoint(self, save_dir: str, tag: str | None = None, client_state: dict | None = None,
                        save_latest: bool = True) -> None:
        """DeepSpeed checkpoint (per-layer weights, ZeRO-1 optimizer shards, `client_state`); all ranks call.
        `save_latest=False` leaves save_dir/latest alone."""
        self.ds.save_checkpoint(save_dir, tag=tag, client_state=client_state or {}, save_latest=save_latest)

    def load_checkpoint(self, load_dir: str, tag: str | None = None, load_optimizer: bool = True) -> dict:
        """Restore weights, and unless `load_optimizer` is False the optimizer and step counter; returns the
        saved client_state. All ranks call."""
        path, client_state = self.ds.load_checkpoint(load_dir, tag=tag, load_optimizer_states=load_optimizer,
                                                     load_lr_scheduler_states=load_optimizer)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint in {load_dir} (tag {tag})")
        return client_state

    def named_parameters(self) -> dict[str, torch.nn.Parameter]:
        """This rank's parameters by the pipeline module's names ("5.qkv.weight", "tied_modules.embed....")."""
        return dict(self.ds.module.named_parameters())

    def param_names_in_groups(self) -> list[list[str]]:
        """The parameter names of each optimizer group, in the optimizer's order."""
        return param_names_in_groups(self.ds.module)

    def set_adam_state(self, moments: dict[str, dict[str, torch.Tensor]], step: int) -> None:
        """Put Adam moments ({"exp_avg", "exp_avg_sq"} of this rank's parameter shards, by the names of
        `named_parameters`) into the optimizer, however ZeRO partitions it across data-parallel ranks.

        Without ZeRO the optimizer is torch's AdamW over the module's parameters. With ZeRO-1 it is AdamW
        over each data-parallel rank's slice of the flattened parameter groups; DeepSpeed records for every
        parameter which fragment of it this rank holds (`_hp_mapping`, as its universal-checkpoint loader
        uses), and torch creates no state before the first step, so the state is built here."""
        named = self.named_parameters()
        optimizer = self.ds.optimizer
        step_tensor = torch.tensor(float(step))
        if self.zero_stage == 0:
            if not isinstance(optimizer, torch.optim.Optimizer):
                raise TypeError(f"cannot set the state of a {type(optimizer).__name__}")
            for name, param in named.items():
                optimizer.state[param] = {"step": step_tensor.clone(), **{
                    k: v.to(param.dtype).reshape(param.shape).clone() for k, v in moments[name].items()}}
            return
        name_of = {id(p): n for n, p in named.items()}
        for group_params, flat in zip(optimizer.bit16_groups, optimizer.single_partition_of_fp32_groups):
            group_state = {"step": step_tensor.clone(), "exp_avg": torch.zeros_like(flat),
                           "exp_avg_sq": torch.zeros_like(flat)}
            for param in group_params:
                mapping = param._hp_mapping
                if mapping is None:  # none of this parameter lies in this rank's slice
                    continue
                lp, hp = mapping.lp_fragment_address, mapping.hp_fragment_address
                for key in ("exp_avg", "exp_avg_sq"):
                    values = moments[name_of[id(param)]][key].flatten().to(flat.dtype)
                    group_state[key].narrow(0, hp.start, hp.numel).copy_(values.narrow(0, lp.start, lp.numel))
            optimizer.optimizer.state[flat] = group_state

    # -- random number generators ---------------------------------------------------------------------
    def rng_state(self) -> dict:
        """This rank's RNG states: python, numpy, torch CPU and CUDA, and DeepSpeed's model-parallel
        (dropout) streams when they are seeded; tensors and plain types only (checkpoints hold data only)."""
        state = {
            "python": random.getstate(),
            "numpy": _numpy_state_as_data(np.random.get_state()),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        tracker = _model_parallel_rng_tracker()
        if tracker is not None:
            state["model_parallel"] = tracker.get_states()
        return state

    def set_rng_state(self, state: dict) -> None:
        random.setstate(state["python"])
        np.random.set_state(_numpy_state_from_data(state["numpy"]))
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        tracker = _model_parallel_rng_tracker()
        if state.get("model_parallel") and tracker is not None:
            tracker.set_states(state["model_parallel"])

    def seed_rng(self, seed: int) -> None:
        """Seed every generator of `rng_state` afresh (the model-parallel streams only if seeded)."""
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if _model_parallel_rng_tracker() is not None:
            deepspeed.checkpointing.model_parallel_cuda_manual_seed(seed)


def _numpy_state_as_data(state: tuple) -> tuple:
    """numpy's (name, uint32 keys, pos, has_gauss, cached_gaussian), its keys as a tensor."""
    name, keys, *rest = state
    return (name, torch.from_numpy(keys.astype(np.int64)), *rest)


def _numpy_state_from_data(state: tuple) -> tuple:
    name, keys, *rest = state
    return (name, keys.numpy().astype(np.uint32), *rest)


def _model_parallel_rng_tracker():
    """DeepSpeed's per-tensor-rank dropout RNG streams (build_engine seeds them when dropout > 0), if seeded."""
    tracker = deepspeed.checkpointing.get_cuda_rng_tracker()
    return tracker if tracker.get_states() else None


def build_engine(cfg: TrainConfig, *, global_batch_size: int | None = None,
                 backend: str | None = None, log: Callable[[str], None] = print) -> TrainerEngine:
    """Build this rank's share of the model and the DeepSpeed pipeline engine.

    Joins the distributed job if needed (gloo on CPU, NCCL on GPUs), derives the layout from
    cfg.parallel (tensor, pipeline) and the world size (data), creates megatron-core's groups in DeepSpeed's
    rank order and checks they agree, initialises the weights from cfg.seed, and wraps the model with ZeRO
    stage cfg.parallel.zero_stage and torch's AdamW. `global_batch_size` defaults to
    cfg.batch.global_batch_size. The learning rate is the caller's (`set_lr` before each step).
    """
    init_distributed(backend)
    layout = layout_for_world(cfg.parallel.tensor, cfg.parallel.pipeline, dist.get_world_size())
    shape = model_shape(cfg.model, layout.tensor, cfg.seed, pipeline_parallel=layout.pipeline)  # checks the shape
    placement = gather_placement(layout)
    if dist.get_rank() == 0:
        log(f"layout {layout}, ZeRO stage {effective_zero_stage(cfg, layout)}\n{format_rank_table(placement)}")
        for problem in placement_problems(placement):
            log(f"WARNING: {problem}; place a node's ranks consecutively (hostfile slots, --nproc-per-node)")

    init_megatron_groups(layout)
    module = build_pipeline_module(shape, layout, cfg.parallel.activation_checkpoint_interval)
    groups = deepspeed_group_ranks(module)
    mismatches = compare_groups(megatron_group_ranks(), groups)
    if mismatches:
        raise RuntimeError(f"rank {dist.get_rank()}: megatron-core and DeepSpeed groups differ: {mismatches}")
    if cfg.model.dropout > 0.0:
        # DeepSpeed's RNG tracker (CPU and CUDA) keyed by megatron-core's tensor-parallel rank
        deepspeed.checkpointing.configure(parallel_state)
        deepspeed.checkpointing.model_parallel_cuda_manual_seed(cfg.seed)

    config = merge_deepspeed_json(deepspeed_config(cfg, layout, global_batch_size or cfg.batch.global_batch_size),
                                  cfg.run.deepspeed_json)  # the preset's infra/deepspeed/*.json
    ds_engine, _, _, _ = deepspeed.initialize(model=module, optimizer=build_optimizer(module, cfg), config=config)
    ds_engine.checkpoint_engine.load = load_data  # DeepSpeed's own load unpickles anything (weights_only=False)
    if ds_engine.zero_optimization_stage() == 0:
        ds_engine.clip_fp32_gradients = functools.partial(_clip_and_keep_norm, ds_engine)
    return TrainerEngine(ds_engine, cfg, layout, shape, placement, groups)
