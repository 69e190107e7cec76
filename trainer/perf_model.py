"""Iteration time of a 3D-parallel GPT from the hardware: compute, pipeline bubble and TP/PP/DP communication.

The schedule is the trainer's: DeepSpeed's 1F1B pipeline with Megatron tensor slicing inside each stage,
ZeRO-1 across data-parallel replicas, nothing overlapped with compute (Megatron's tensor-parallel
all-reduces are synchronous, DeepSpeed's pipeline sends are blocking and its gradient reduction runs
after the last micro-batch). Per micro-batch of b samples on one GPU:

- compute: the stage's layers, 96 b s h^2 (1 + s/(6h)) FLOPs each with full recomputation (72 without),
  plus the logits on the last stage (6 b s h V), all divided by TP, at `compute_efficiency` x peak;
- tensor parallelism: a ring all-reduce of the b s h activations (bf16) over NVLink, 2 per layer in the
  forward, 2 in the backward, 2 more in the recomputed forward; one more for the embedding (first stage)
  and the logits' input gradient (last stage);
- pipeline parallelism: each stage receives and sends one b s h activation (forward) and one gradient
  (backward); DeepSpeed sends the whole tensor from every tensor-parallel rank, each GPU over its own
  link: InfiniBand when adjacent stages sit on different nodes, NVLink otherwise.

A 1F1B iteration of m micro-batches on p stages takes (m + p - 1) slots of the slowest stage's
forward + backward (the p - 1 extra are the bubble); then the gradients of the busiest stage (the
first, with the word embedding) are reduce-scattered and the updated weights all-gathered across the
d replicas (ZeRO-1; an all-reduce without ZeRO: the same bytes), the tied embedding's gradient is
all-reduced between the first and last stage, and Adam updates the GPU's share of the parameters at
HBM speed. Ring collectives move 2 (n - 1) / n of the message per GPU in 2 (n - 1) steps.

Links run at `link_efficiency` of their line rate (what NCCL reaches on large messages); the one
fitted number is `compute_efficiency`, the share of peak the GEMMs reach, set once so that the paper's
530B run on 280 DGX A100 nodes takes its measured 60.1 s per iteration (`fit_compute_efficiency`).
Everything that changes with the node count (the bubble, the replicas' gradient traffic against less
compute per GPU) comes from the formulas above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from trainer.config import ModelConfig

ACTIVATION_BYTES = 2  # bf16 activations and gradients on the wire
GRADIENT_BYTES = 2  # bf16 gradients reduced across replicas (and bf16 weights gathered back)
# Adam's update of one parameter (ZeRO-1: a replica's share): read fp32 master, moments and gradient
# (16 bytes), write master and moments (12), write the bf16 weight (2).
OPTIMIZER_TRAFFIC_BYTES = 30


@dataclass(frozen=True)
class Hardware:
    name: str
    gpus_per_node: int
    peak_tflops: float  # dense bf16, per GPU
    gpu_memory_gb: float
    hbm_gbs: float  # GPU memory bandwidth, GB/s
    nvlink_gbs: float  # per GPU and direction, GB/s
    inter_node_gbs: float  # per GPU and direction: the node's network links over its GPUs, GB/s
    nvlink_latency_s: float  # per message step
    inter_node_latency_s: float
    link_efficiency: float  # share of a link's line rate that NCCL reaches on large messages
    compute_efficiency: float  # share of peak the model's GEMMs reach (fitted, see the module docstring)


# DGX A100 80 GB: 8 A100 SXM4 (312 TFLOP/s bf16 dense, 2.0 TB/s HBM2e), NVLink 3 through NVSwitch (12 links
# x 25 GB/s = 300 GB/s per direction per GPU), 8 HDR InfiniBand NICs of 200 Gb/s per node (25 GB/s per GPU),
# as in the paper's cluster. compute_efficiency: fit_compute_efficiency(530B, 280 nodes, 60.1 s).
DGX_A100 = Hardware(name="dgx-a100", gpus_per_node=8, peak_tflops=312.0, gpu_memory_gb=80.0, hbm_gbs=2039.0,
                    nvlink_gbs=300.0, inter_node_gbs=200 / 8, nvlink_latency_s=10e-6,
                    inter_node_latency_s=10e-6, link_efficiency=0.8, compute_efficiency=0.5424)

HARDWARE = {hw.name: hw for hw in (DGX_A100,)}


@dataclass(frozen=True)
class Layout:
    tensor: int
    pipeline: int
    data: int
    micro_batch: int
    global_batch: int
    recompute: bool
    zero_stage: int

    @property
    def micro_batches(self) -> int:
        """Per pipeline per iteration."""
        return self.global_batch // (self.micro_batch * self.data)


@dataclass(frozen=True)
class IterationTime:
    """Seconds of one iteration, by what they are spent on (they add up to `total_s`)."""

    compute_s: float  # the slowest stage's GEMMs over all m + p - 1 slots (bubble included)
    tensor_comm_s: float  # its tensor-parallel all-reduces over the same slots
    pipeline_comm_s: float  # activation and gradient transfers between stages over the same slots
    data_comm_s: float  # gradient reduce-scatter + weight all-gather across replicas, tied embedding
    optimizer_s: float
    bubble_s: float  # the part of the three above spent in the p - 1 fill and drain slots

    @property
    def total_s(self) -> float:
        return self.compute_s + self.tensor_comm_s + self.pipeline_comm_s + self.data_comm_s + self.optimizer_s


def ring_time(message_bytes: float, ranks: int, link_gbs: float, latency_s: float) -> float:
    """A ring all-reduce (or reduce-scatter + all-gather) of one message among `ranks` GPUs."""
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * message_bytes / (link_gbs * 1e9) + 2 * (ranks - 1) * latency_s


def layer_flops(model: ModelConfig, micro_batch: int, recompute: bool) -> float:
    """Forward + backward (+ recomputed forward) FLOPs of one transformer layer for one micro-batch."""
    s, h = model.seq_length, model.hidden_size
    return (96 if recompute else 72) * micro_batch * s * h * h * (1 + s / (6 * h))


def layer_parameters(hidden: int) -> int:
    """QKV, projection and the 4h MLP with their biases, two LayerNorms."""
    return 12 * hidden * hidden + 13 * hidden


def iteration_time(model: ModelConfig, layout: Layout, hw: Hardware, padded_vocab: int) -> IterationTime:
    t, p, d, b = layout.tensor, layout.pipeline, layout.data, layout.micro_batch
    s, h = model.seq_length, model.hidden_size
    m = layout.micro_batches
    layers = math.ceil(model.num_layers / p)
    flops_per_s = hw.compute_efficiency * hw.peak_tflops * 1e12
    nvlink = hw.nvlink_gbs * hw.link_efficiency
    network = hw.inter_node_gbs * hw.link_efficiency

    # One slot: one micro-batch's forward and backward on a stage.
    compute = layers * layer_flops(model, b, layout.recompute) / t / flops_per_s
    logits = 6 * b * s * h * padded_vocab / t / flops_per_s
    activation = b * s * h * ACTIVATION_BYTES
    all_reduce = ring_time(activation, t, nvlink, hw.nvlink_latency_s)
    per_layer = 6 if layout.recompute else 4
    tensor_comm = (layers * per_layer + 1) * all_reduce  # + embedding (first) / logits' input gradient (last)
    slot_compute = compute + logits  # the last stage is the slowest: its layers and the logits
    stages_share_node = p > 1 and t * d < hw.gpus_per_node
    link, latency = (nvlink, hw.nvlink_latency_s) if stages_share_node else (network, hw.inter_node_latency_s)
    pipeline_comm = 2 * (activation / (link * 1e9) + latency) if p > 1 else 0.0

    slots = m + p - 1
    # Replicas: one GPU per node in each data-parallel ring when TP fills the node, else NVLink inside it.
    replica_link = network if t * d > hw.gpus_per_node else nvlink
    replica_latency = hw.inter_node_latency_s if t * d > hw.gpus_per_node else hw.nvlink_latency_s
    embedding = padded_vocab * h + s * h
    busiest_params = (layers * layer_parameters(h) + embedding) / t
    data_comm = ring_time(busiest_params * GRADIENT_BYTES, d, replica_link, replica_latency)
    if p > 1:  # the word embedding is tied between the first and the last stage
        data_comm += ring_time(padded_vocab * h / t * GRADIENT_BYTES, 2, network, hw.inter_node_latency_s)
    updated = busiest_params / (d if layout.zero_stage >= 1 else 1)
    optimizer = updated * OPTIMIZER_TRAFFIC_BYTES / (hw.hbm_gbs * 1e9)
    return IterationTime(
        compute_s=slots * slot_compute,
        tensor_comm_s=slots * tensor_comm,
        pipeline_comm_s=slots * pipeline_comm,
        data_comm_s=data_comm,
        optimizer_s=optimizer,
        bubble_s=(p - 1) * (slot_compute + tensor_comm + pipeline_comm),
    )


def fit_compute_efficiency(model: ModelConfig, layout: Layout, hw: Hardware, padded_vocab: int,
                           seconds: float) -> float:
    """The compute efficiency at which `iteration_time` is `seconds` (bisection: time falls as it rises)."""
    low, high = 1e-3, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        predicted = iteration_time(model, layout, replace(hw, compute_efficiency=middle), padded_vocab).total_s
        low, high = (middle, high) if predicted > seconds else (low, middle)
    return (low + high) / 2
