"""Process groups: one topology, two libraries.

DeepSpeed's pipeline engine builds its groups (pipeline, data, tensor "slice", tied embedding) from
`PipeModelDataParallelTopology`; megatron-core's tensor-parallel layers and cross-entropy use
`parallel_state`'s groups. Megatron's are created in the same rank order (tp fastest, then dp, then pp),
and `compare_groups` checks, rank by rank, that both libraries talk to the same peers.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from megatron.core import parallel_state

from trainer.parallel.topology import Layout

GROUP_NAMES = ("tensor", "pipeline", "data", "embedding")


def default_backend() -> str:
    """NCCL where DeepSpeed runs on CUDA, gloo on CPU."""
    from deepspeed.accelerator import get_accelerator

    return "nccl" if get_accelerator().device_name() == "cuda" else "gloo"


def init_distributed(backend: str | None = None, timeout_minutes: int = 30) -> str:
    """Join the job started by `deepspeed`, `torchrun` (env://) or a single plain process."""
    import deepspeed

    backend = backend or default_backend()
    if backend == "nccl":  # one GPU per process, chosen before NCCL creates its communicators
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if "RANK" not in os.environ:  # one process without a launcher
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", str(_free_port()))
        deepspeed.init_distributed(dist_backend=backend, timeout=timedelta(minutes=timeout_minutes))
    return backend


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_megatron_groups(layout: Layout) -> None:
    """megatron-core's groups for this layout, in DeepSpeed's rank order."""
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=layout.tensor,
        pipeline_model_parallel_size=layout.pipeline,
        order="tp-cp-ep-dp-pp",
        create_gloo_process_groups=False,
    )


def destroy_megatron_groups() -> None:
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()


def megatron_group_ranks() -> dict[str, list[int]]:
    """The global ranks of this process's megatron-core groups."""
    return {
        "tensor": dist.get_process_group_ranks(parallel_state.get_tensor_model_parallel_group()),
        "pipeline": dist.get_process_group_ranks(parallel_state.get_pipeline_model_parallel_group()),
        "data": dist.get_process_group_ranks(parallel_state.get_data_parallel_group()),
        "embedding": (dist.get_process_group_ranks(parallel_state.get_embedding_group())
                      if parallel_state.is_rank_in_embedding_group() else []),
    }


def deepspeed_group_ranks(pipeline_module) -> dict[str, list[int]]:
    """The global ranks of this process's groups in DeepSpeed's grid and tied-embedding communicator."""
    grid = pipeline_module._grid
    tied = pipeline_module.tied_comms
    return {
        "tensor": dist.get_process_group_ranks(grid.get_slice_parallel_group()),
        "pipeline": dist.get_process_group_ranks(grid.get_pipe_parallel_group()),
        "data": dist.get_process_group_ranks(grid.get_data_parallel_group()),
        "embedding": sorted(next(iter(tied.values()))["ranks"]) if tied else [],
    }


def compare_groups(megatron: dict[str, list[int]], deepspeed: dict[str, list[int]]) -> list[str]:
    """Differences between the two libraries' groups for this rank (empty when they agree). A group of this
    rank alone does no communication and counts as no group (DeepSpeed makes no tied-embedding group for a
    one-stage pipeline, megatron-core makes one of a single rank)."""

    def members(ranks: list[int]) -> list[int]:
        return sorted(ranks) if len(ranks) > 1 else []

    return [f"{name}: megatron-core {sorted(megatron[name])} vs DeepSpeed {sorted(deepspeed[name])}"
            for name in GROUP_NAMES if members(megatron[name]) != members(deepspeed[name])]


def one_process_groups() -> None:
    """A one-process gloo group with megatron-core's groups of size one (tensor-parallel layers need them).
    The group is joined by an explicit address, leaving os.environ alone: processes this one starts must
    not inherit a RANK or MASTER_PORT (they would try to join this group)."""
    if not dist.is_initialized():
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    init_megatron_groups(Layout())


def release_process_groups() -> None:
    """Undo one_process_groups (for a process that goes on to do other distributed work)."""
    destroy_megatron_groups()
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def groups_for_building():
    """megatron-core's groups, which building tensor-parallel layers needs: this process's own if it has
    them (a live engine's), else one-process groups for the time of the block."""
    if parallel_state.model_parallel_is_initialized():
        yield
        return
    had_process_group = dist.is_initialized()
    one_process_groups()
    try:
        yield
    finally:
        destroy_megatron_groups()
        if not had_process_group:
            dist.destroy_process_group()
