"""The 3D layout: DeepSpeed's topology and where each rank sits (node, pipeline stage, data replica, tensor slice).

Ranks are numbered tensor-fastest, then data, then pipeline (DeepSpeed's `PipeModelDataParallelTopology`,
Megatron's "tp-dp-pp" order). With ranks filled node by node, this is the paper's mapping: the
bandwidth-hungry tensor-parallel ranks share a node (NVLink), data-parallel replicas come next and
pipeline stages, which only exchange activations at stage boundaries, span nodes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from deepspeed.runtime.pipe.topology import PipeModelDataParallelTopology


@dataclass(frozen=True)
class Layout:
    tensor: int = 1
    pipeline: int = 1
    data: int = 1

    @property
    def world_size(self) -> int:
        return self.tensor * self.pipeline * self.data

    @classmethod
    def parse(cls, text: str) -> Layout:
        """'TPxPPxDP', e.g. '2x2x2'."""
        try:
            tp, pp, dp = (int(part) for part in text.lower().split("x"))
        except ValueError:
            raise ValueError(f"layout {text!r} is not TPxPPxDP, e.g. 2x2x2") from None
        if min(tp, pp, dp) < 1:
            raise ValueError(f"layout {text!r}: every degree must be >= 1")
        return cls(tp, pp, dp)

    def __str__(self) -> str:
        return f"TP{self.tensor}xPP{self.pipeline}xDP{self.data}"


def layout_for_world(tensor: int, pipeline: int, world_size: int) -> Layout:
    """The data-parallel degree is what the world leaves after tensor x pipeline."""
    model = tensor * pipeline
    if world_size % model:
        raise ValueError(f"world size {world_size} is not a multiple of tensor {tensor} x pipeline {pipeline}")
    return Layout(tensor, pipeline, world_size // model)


def build_topology(layout: Layout) -> PipeModelDataParallelTopology:
    return PipeModelDataParallelTopology(num_pp=layout.pipeline, num_mp=layout.tensor, num_dp=layout.data)


@dataclass(frozen=True)
class RankPlace:
    rank: int
    node: int
    pp: int
    dp: int
    tp: int


def node_of_this_process() -> int:
    """Node index as the launcher tells it: torchrun's GROUP_RANK, DeepSpeed's CROSS_RANK, else NODE_RANK,
    else rank // LOCAL_WORLD_SIZE (ranks are filled node by node by both launchers)."""
    for name in ("GROUP_RANK", "CROSS_RANK", "NODE_RANK"):
        if os.environ.get(name) not in (None, ""):
            return int(os.environ[name])
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE") or os.environ.get("WORLD_SIZE", "1"))
    return rank // max(local, 1)


def rank_table(topology: PipeModelDataParallelTopology, nodes: list[int]) -> list[RankPlace]:
    """One row per rank; `nodes[rank]` is that rank's node index."""
    rows = []
    for rank, node in enumerate(nodes):
        coord = topology.get_coord(rank)
        rows.append(RankPlace(rank=rank, node=node, pp=coord.pipe, dp=coord.data, tp=coord.model))
    return rows


def placement_problems(rows: list[RankPlace]) -> list[str]:
    """Where the layout breaks the paper's mapping: a tensor-parallel group split across nodes."""
    problems = []
    groups: dict[tuple[int, int], set[int]] = {}
    for row in rows:
        groups.setdefault((row.pp, row.dp), set()).add(row.node)
    for (pp, dp), nodes in sorted(groups.items()):
        if len(nodes) > 1:
            problems.append(f"tensor-parallel group (pp={pp}, dp={dp}) spans nodes {sorted(nodes)}")
    return problems


def format_rank_table(rows: list[RankPlace]) -> str:
    lines = ["rank -> (node, pp, dp, tp)"]
    lines += [f"{row.rank:>5} -> ({row.node}, {row.pp}, {row.dp}, {row.tp})" for row in rows]
    return "\n".join(lines)


def rows_as_dicts(rows: list[RankPlace]) -> list[dict]:
    return [asdict(row) for row in rows]
