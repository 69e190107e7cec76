"""Capacity planner: what a model, its parallel layout and a cluster mean for memory and time.

    python -m trainer.plan --preset mtnlg-530b                     # the paper's 280 DGX A100 nodes
    python -m trainer.plan --preset mtnlg-530b --nodes 420 --json  # predicted time and TFLOP/s per GPU
    python -m trainer.plan --preset mtnlg-530b --nodes 420 --tflops 113   # time at a given TFLOP/s
    python -m trainer.plan --preset 1b --nodes 1 --set parallel.tensor=2 --inter-node-gbs 50

The figures follow the MT-NLG paper (arXiv 2201.11990, section 2) and Narayanan et al. 2021:

- parameters from the layer shapes: each layer 12 h^2 + 13 h (QKV, projection and the 4h MLP with
  their biases, two LayerNorms), plus the tied word embedding (vocabulary padded as the trainer pads it),
  the learned positions and the final LayerNorm;
- model states at 20 bytes per parameter: bf16 weights (2) and gradients (2), and fp32 optimizer
  states (16: master weights, gradients, Adam's two moments). Tensor and pipeline parallelism divide the
  parameters; ZeRO stage 1 also shards the 16 optimizer bytes over the data-parallel ranks;
- activations with recomputation are the layer-boundary inputs, batch x layers x seq x hidden x 2 bytes
  (with `parallel.activation_checkpoint_interval` k, one input every k layers), plus the full activations
  of the k layers being recomputed; without recomputation (k = 0) every layer keeps s b h (10 + 24/t)
  bytes (Korthikanti et al. 2022, no sequence parallelism), plus 5 a s^2 b / t for the attention scores
  where attention materializes them (the trainer's scaled_dot_product_attention does not on GPUs);
- pipeline efficiency MB / (MB + PP - 1) for MB micro-batches per pipeline per iteration;
- FLOPs per iteration 96 B s l h^2 (1 + s/(6h) + V/(16 l h)), 72 instead of 96 without recomputation
  (trainer.metrics); TFLOP/s per GPU = those FLOPs / (iteration time x GPUs), as the paper counts;
- the iteration time predicted from the hardware (`--hardware`, a preset of trainer.perf_model: peak
  TFLOP/s, NVLink and inter-node bandwidth) by trainer.perf_model: compute, pipeline bubble, tensor-
  parallel all-reduces, pipeline transfers, the replicas' gradient reduction and the optimizer step;
  `--tflops` replaces the prediction with a measured end-to-end TFLOP/s per GPU.

Memory figures are a floor: communication buckets, allocator fragmentation and the logits of the last
stage come on top. Sizes are decimal (1 GB = 1e9 bytes), as the paper quotes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass

from blending.user_errors import reports_bad_input
from trainer.config import ConfigError, ModelConfig, TrainConfig, apply_override, check_model_shape
from trainer.metrics import narayanan_flops_per_iteration
from trainer.perf_model import DGX_A100, HARDWARE, Hardware, IterationTime, Layout, iteration_time, layer_parameters
from trainer.presets import PRESETS, get_preset

# Bytes per parameter with mixed-precision Adam.
WEIGHT_BYTES = 2  # bf16 weights
GRAD_BYTES = 2  # bf16 gradients
OPTIMIZER_BYTES = 16  # fp32 master weights, fp32 gradients, Adam first and second moments
BYTES_PER_PARAM = WEIGHT_BYTES + GRAD_BYTES + OPTIMIZER_BYTES  # 20
ACTIVATION_BYTES = 2  # bf16


@dataclass
class Cluster:
    nodes: int
    hardware: Hardware = DGX_A100
    achieved_tflops: float | None = None  # per GPU, end to end; given, it replaces the predicted time

    @property
    def gpus(self) -> int:
        return self.nodes * self.hardware.gpus_per_node


# The paper's cluster for its model; other presets default to the fewest nodes holding one replica.
PAPER_CLUSTERS = {"mtnlg-530b": Cluster(nodes=280)}


def parameter_count(model: ModelConfig, tensor_parallel: int) -> int:
    h = model.hidden_size
    embeddings = model.padded_vocab_size(tensor_parallel) * h + model.seq_length * h
    return model.num_layers * layer_parameters(h) + embeddings + 2 * h


def model_state_bytes(params: float, data_parallel: int, zero_stage: int) -> float:
    """Weights, gradients and optimizer states of `params` parameters on one GPU."""
    optimizer = OPTIMIZER_BYTES / data_parallel if zero_stage >= 1 else OPTIMIZER_BYTES
    return params * (WEIGHT_BYTES + GRAD_BYTES + optimizer)


def boundary_activation_bytes(samples: int, layers: int, seq: int, hidden: int) -> int:
    """The input of every layer, kept for the backward pass when layers are recomputed."""
    return samples * layers * seq * hidden * ACTIVATION_BYTES


def layer_activation_bytes(micro_batch: int, model: ModelConfig, tensor_parallel: int,
                           attention_scores: bool = False) -> float:
    """All of one layer's activations on one GPU (Korthikanti et al. 2022, no sequence parallelism).

    Fused attention keeps no s x s score matrices; `attention_scores` counts them (softmax output,
    its dropout mask and output) as an unfused implementation stores them.
    """
    s, h, a, t = model.seq_length, model.hidden_size, model.num_attention_heads, tensor_parallel
    scores = 5 * a * s / (h * t) if attention_scores else 0.0
    return s * micro_batch * h * (10 + 24 / t + scores)


def pipeline_efficiency(micro_batches: int, pipeline: int) -> float:
    """Share of a 1F1B / GPipe iteration not spent in the pipeline bubble."""
    return micro_batches / (micro_batches + pipeline - 1)


@dataclass
class Plan:
    preset: str
    nodes: int
    gpus: int
    tensor: int
    pipeline: int
    data: int
    zero_stage: int
    recompute: bool
    parameters: int
    padded_vocab: int
    model_state_bytes_total: float  # all replicas' weights, gradients and optimizer states, unsharded
    layers_per_stage: int
    params_per_gpu: float  # the busiest stage: its layers plus the word and position embeddings
    model_state_bytes_per_gpu: float
    activation_bytes_full_batch: float  # layer boundaries, the whole global batch at once
    activation_bytes_per_sample: float  # layer boundaries, one micro-batch of one sample
    activation_bytes_per_gpu: float  # what the first pipeline stage holds at its peak
    peak_bytes_per_gpu: float
    gpu_memory_bytes: float
    global_batch: int
    micro_batch: int
    micro_batches: int  # per pipeline per iteration
    pipeline_efficiency: float
    flops_per_iteration: float
    hardware: str
    peak_tflops: float
    compute_efficiency: float  # share of peak the GEMMs reach in the time model
    predicted: bool  # False when the time comes from a given TFLOP/s
    iteration_s: float
    tflops_per_gpu: float
    predicted_iteration_s: float
    predicted_tflops_per_gpu: float
    time_breakdown: dict  # predicted seconds by what they are spent on (trainer.perf_model.IterationTime)
    tokens_per_second: float
    train_tokens: int
    train_days: float

    @property
    def fits(self) -> bool:
        return self.peak_bytes_per_gpu <= self.gpu_memory_bytes

    @property
    def memory_per_gpu_gb(self) -> float:
        return self.peak_bytes_per_gpu / 1e9

    # the names these figures had before the time was predicted
    @property
    def seconds_per_iteration(self) -> float:
        return self.iteration_s

    @property
    def achieved_tflops(self) -> float:
        return self.tflops_per_gpu

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "fits": self.fits, "memory_per_gpu_gb": self.memory_per_gpu_gb,
                "seconds_per_iteration": self.iteration_s, "achieved_tflops": self.tflops_per_gpu}


def check_nodes(nodes: int, gpus_per_node: int, tensor: int, pipeline: int) -> None:
    """The cluster must hold whole model replicas (TP x PP GPUs each): a clear error otherwise."""
    replica = tensor * pipeline
    if nodes < 1:
        raise ConfigError(f"--nodes {nodes}: at least one node is needed")
    if nodes * gpus_per_node % replica == 0:
        return
    if replica % gpus_per_node == 0:
        step = replica // gpus_per_node
        raise ConfigError(
            f"--nodes {nodes}: one model replica (TP {tensor} x PP {pipeline} = {replica} GPUs) fills {step} nodes "
            f"of {gpus_per_node} GPUs, so the node count must be a multiple of {step} "
            f"(e.g. {' or '.join(str(n) for n in (nodes // step * step, (nodes // step + 1) * step) if n)})")
    raise ConfigError(f"--nodes {nodes}: {nodes * gpus_per_node} GPUs are not a multiple of one model replica's "
                      f"TP {tensor} x PP {pipeline} = {replica} GPUs")


def make_plan(cfg: TrainConfig, cluster: Cluster, preset: str = "", attention_scores: bool = False) -> Plan:
    """Every figure for `cfg` on `cluster`; a layout that cannot run there is a ConfigError."""
    m, p, b = cfg.model, cfg.parallel, cfg.batch
    hw = cluster.hardware
    check_nodes(cluster.nodes, hw.gpus_per_node, p.tensor, p.pipeline)
    dp = cluster.gpus // (p.tensor * p.pipeline)
    if b.global_batch_size % (b.micro_batch_size * dp):
        raise ConfigError(
            f"global batch {b.global_batch_size} is not a multiple of micro-batch {b.micro_batch_size} x DP {dp}"
        )
    check_model_shape(m, p.tensor, p.pipeline)

    h, s = m.hidden_size, m.seq_length
    vocab = m.padded_vocab_size(p.tensor)
    params = parameter_count(m, p.tensor)
    layers_per_stage = math.ceil(m.num_layers / p.pipeline)
    stage_params = layers_per_stage * layer_parameters(h) + vocab * h + s * h
    params_per_gpu = stage_params / p.tensor
    states_per_gpu = model_state_bytes(params_per_gpu, dp, p.zero_stage)

    micro_batches = b.global_batch_size // (b.micro_batch_size * dp)
    # 1F1B: the first stage holds the activations of up to PP micro-batches in flight.
    in_flight = min(p.pipeline, micro_batches)
    interval = p.activation_checkpoint_interval
    recompute = interval > 0
    layer_bytes = layer_activation_bytes(b.micro_batch_size, m, p.tensor, attention_scores)
    if recompute:
        # a checkpoint (the block's input) every `interval` blocks; one segment is live while recomputed
        checkpoints = math.ceil(layers_per_stage / interval)
        stored = boundary_activation_bytes(in_flight * b.micro_batch_size, checkpoints, s, h)
        activations = stored + min(interval, layers_per_stage) * layer_bytes
    else:
        activations = in_flight * layers_per_stage * layer_bytes

    flops = narayanan_flops_per_iteration(b.global_batch_size, s, m.num_layers, h, vocab, recompute)
    layout = Layout(tensor=p.tensor, pipeline=p.pipeline, data=dp, micro_batch=b.micro_batch_size,
                    global_batch=b.global_batch_size, recompute=recompute, zero_stage=p.zero_stage)
    timing: IterationTime = iteration_time(m, layout, hw, vocab)
    predicted_tflops = flops / (timing.total_s * cluster.gpus * 1e12)
    tflops = cluster.achieved_tflops or predicted_tflops
    seconds = flops / (cluster.gpus * tflops * 1e12)
    tokens_per_second = b.global_batch_size * s / seconds
    return Plan(
        preset=preset,
        nodes=cluster.nodes,
        gpus=cluster.gpus,
        tensor=p.tensor,
        pipeline=p.pipeline,
        data=dp,
        zero_stage=p.zero_stage,
        recompute=recompute,
        parameters=params,
        padded_vocab=vocab,
        model_state_bytes_total=params * BYTES_PER_PARAM,
        layers_per_stage=layers_per_stage,
        params_per_gpu=params_per_gpu,
        model_state_bytes_per_gpu=states_per_gpu,
        activation_bytes_full_batch=boundary_activation_bytes(b.global_batch_size, m.num_layers, s, h),
        activation_bytes_per_sample=boundary_activation_bytes(1, m.num_layers, s, h),
        activation_bytes_per_gpu=activations,
        peak_bytes_per_gpu=states_per_gpu + activations,
        gpu_memory_bytes=hw.gpu_memory_gb * 1e9,
        global_batch=b.global_batch_size,
        micro_batch=b.micro_batch_size,
        micro_batches=micro_batches,
        pipeline_efficiency=pipeline_efficiency(micro_batches, p.pipeline),
        flops_per_iteration=flops,
        hardware=hw.name,
        peak_tflops=hw.peak_tflops,
        compute_efficiency=hw.compute_efficiency,
        predicted=cluster.achieved_tflops is None,
        iteration_s=seconds,
        tflops_per_gpu=tflops,
        predicted_iteration_s=timing.total_s,
        predicted_tflops_per_gpu=predicted_tflops,
        time_breakdown={**dataclasses.asdict(timing), "total_s": timing.total_s},
        tokens_per_second=tokens_per_second,
        train_tokens=cfg.train_tokens,
        train_days=cfg.train_tokens / tokens_per_second / 86400,
    )


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _count(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def format_plan(plan: Plan) -> str:
    pp = plan.pipeline
    in_flight = min(pp, plan.micro_batches)
    recompute = "full recomputation" if plan.recompute else "no recomputation"
    rows = [
        ("layout", f"TP {plan.tensor} x PP {pp} x DP {plan.data} = {plan.gpus} GPUs on {plan.nodes} node{'s' if plan.nodes > 1 else ''}, "
                   f"ZeRO-{plan.zero_stage}, {recompute}"),
        ("parameters", f"{_count(plan.parameters)} ({plan.parameters:,}; vocabulary padded to {plan.padded_vocab})"),
        ("model states", f"{_size(plan.model_state_bytes_total)} in all at {BYTES_PER_PARAM} bytes/param"),
        ("  per GPU", f"{_size(plan.model_state_bytes_per_gpu)} for {_count(plan.params_per_gpu)} params "
                      f"(busiest stage: {plan.layers_per_stage} layers + embeddings, / TP"
                      f"{', optimizer states / DP' if plan.zero_stage >= 1 else ''})"),
        ("activations", f"{_size(plan.activation_bytes_full_batch)} at layer boundaries for the whole batch of "
                        f"{plan.global_batch}; {_size(plan.activation_bytes_per_sample)} per one-sample micro-batch"),
        ("  per GPU", f"{_size(plan.activation_bytes_per_gpu)} (first stage, "
                      f"{in_flight} micro-batch{'es' if in_flight > 1 else ''} of {plan.micro_batch} in flight)"),
        ("memory per GPU", f"{_size(plan.peak_bytes_per_gpu)} of {_size(plan.gpu_memory_bytes)}: "
                           f"{'fits' if plan.fits else 'DOES NOT FIT'} (a floor: buffers come on top)"),
        ("pipeline", f"{plan.micro_batches} micro-batches per iteration: efficiency "
                     f"{plan.pipeline_efficiency:.1%} (at 4 x PP: {pipeline_efficiency(4 * pp, pp):.0%}, "
                     f"8 x PP: {pipeline_efficiency(8 * pp, pp):.0%})"),
        ("compute", f"{plan.flops_per_iteration:.3e} FLOPs per iteration"),
        ("time", f"{plan.iteration_s:.1f} s per iteration = {plan.tflops_per_gpu:.1f} TFLOP/s per GPU "
                 f"({plan.tflops_per_gpu / plan.peak_tflops:.0%} of {plan.peak_tflops:g} peak); "
                 f"{plan.tokens_per_second:,.0f} tokens/s"
                 + ("" if plan.predicted else f" at the given TFLOP/s (the model predicts "
                    f"{plan.predicted_iteration_s:.1f} s, {plan.predicted_tflops_per_gpu:.1f} TFLOP/s)")),
        *time_rows(plan),
        ("training", f"{_count(plan.train_tokens)} tokens in {plan.train_days:.1f} days"),
    ]
    width = max(len(name) for name, _ in rows)
    title = f"plan for {plan.preset}" if plan.preset else "plan"
    return "\n".join([title] + [f"  {name:<{width}}  {value}" for name, value in rows])


def time_rows(plan: Plan) -> list[tuple[str, str]]:
    """The predicted iteration time by what it is spent on."""
    t = plan.time_breakdown
    where = "model" if plan.predicted else "model, unused"
    return [
        (f"  {where} ({plan.hardware})", f"{t['total_s']:.2f} s ="),
        ("    compute", f"{t['compute_s']:.2f} s (GEMMs at {plan.compute_efficiency:.1%} of peak; the slowest, last "
                      f"stage over {plan.micro_batches} + {plan.pipeline - 1} slots)"),
        ("    TP all-reduce", f"{t['tensor_comm_s']:.2f} s (NVLink, every layer)"),
        ("    PP transfers", f"{t['pipeline_comm_s']:.2f} s (activations and their gradients between stages)"),
        ("    DP reduction", f"{t['data_comm_s']:.2f} s (gradients reduce-scattered, weights gathered across "
                           f"{plan.data} replicas; tied embedding)"),
        ("    optimizer", f"{t['optimizer_s']:.3f} s (Adam on this GPU's share, memory-bound)"),
        ("    of which bubble", f"{t['bubble_s']:.2f} s (the {plan.pipeline - 1} fill and drain slots)"),
    ]


@reports_bad_input("python -m trainer.plan")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as for training (e.g. parallel.pipeline=16)")
    parser.add_argument("--nodes", type=int, help="default: the paper's 280 for mtnlg-530b, else one replica's")
    parser.add_argument("--hardware", choices=sorted(HARDWARE), default=DGX_A100.name,
                        help="node preset: GPUs, peak TFLOP/s, memory, NVLink and inter-node bandwidth")
    parser.add_argument("--tflops", type=float,
                        help="measured end-to-end TFLOP/s per GPU: the time follows from it instead of the model")
    hardware = parser.add_argument_group("hardware overrides (default: the preset's)")
    for field, help_text in (("gpus_per_node", "GPUs per node"), ("peak_tflops", "dense bf16 peak per GPU"),
                             ("gpu_memory_gb", "memory per GPU"),
                             ("nvlink_gbs", "NVLink GB/s per GPU and direction"),
                             ("inter_node_gbs", "network GB/s per GPU and direction (a node's NICs / its GPUs)"),
                             ("compute_efficiency", "share of peak the GEMMs reach")):
        hardware.add_argument("--" + field.replace("_", "-"), type=int if field == "gpus_per_node" else float,
                              help=help_text)
    parser.add_argument("--attention-scores", action="store_true",
                        help="count stored s x s attention scores (unfused attention)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)

    try:
        cfg = get_preset(args.preset)
        for assignment in args.set:
            apply_override(cfg, assignment)
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Hardware)
                     if getattr(args, f.name, None) is not None}
        hw = dataclasses.replace(HARDWARE[args.hardware], **overrides)
        nodes = args.nodes
        if nodes is None:
            paper = PAPER_CLUSTERS.get(args.preset)
            replica = cfg.parallel.tensor * cfg.parallel.pipeline
            nodes = paper.nodes if paper else math.ceil(replica / hw.gpus_per_node)
        cluster = Cluster(nodes=nodes, hardware=hw, achieved_tflops=args.tflops)
        plan = make_plan(cfg, cluster, preset=args.preset, attention_scores=args.attention_scores)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(plan.to_json(), sort_keys=True))
    else:
        print(format_plan(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
