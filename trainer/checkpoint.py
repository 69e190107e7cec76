"""Atomic, self-describing checkpoints that a run resumes from exactly.

Layout under RUN/checkpoints/:
  step_00000100/             one complete checkpoint
    (DeepSpeed's files)      model layers, ZeRO-1 optimizer partitions, per rank
    rng/rank_00000.pt        each rank's RNG states (python, numpy, torch CPU and CUDA, model-parallel)
    tokenizer.json           the tokenizer the run's shards were made with (export and evaluation read it)
    trainer_state.json       step, consumed samples and tokens, config, manifest sha256; written last
  latest                     the newest complete tag, for DeepSpeed's own tools (zero_to_fp32 etc.)
  .step_00000200.partial/    a save in progress; never read

Every rank writes into the `.partial` folder; after a barrier, rank 0 writes trainer_state.json and
renames the folder into place. A rename is atomic on a POSIX file system, so a process killed at any
moment leaves either the previous checkpoints or the new complete one, never a half-written one that
looks complete. Older complete checkpoints beyond `keep` are then deleted. RUN must be on a file
system that all ranks share (the usual setup for DeepSpeed checkpoints).

A checkpoint written by `python -m trainer.reshard` has no ZeRO files and no RNG states: its Adam
moments are stored per layer file (optimizer/), and `load` puts them into whatever ZeRO partitioning
the resumed launch has, so it resumes with any data-parallel degree.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

STATE_FILE = "trainer_state.json"
TOKENIZER_FILE = "tokenizer.json"
_TAG = re.compile(r"^step_(\d{8})$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be resumed from (missing, or made for another config or data)."""


@dataclass
class TrainerState:
    step: int  # optimizer steps done
    consumed_samples: int
    consumed_tokens: int
    config: dict
    manifest_sha256: str
    data_parallel: int | None = None  # the DP size the ZeRO-1 optimizer partitions were cut for
    # The schedules are functions of the token count; their values at this step, for reading and for
    # noticing a changed schedule on resume: {"lr": ..., "global_batch": ...}.
    scheduler: dict | None = None
    saved_at: float = 0.0
    tokenizer: dict | None = None  # {"file": "tokenizer.json", "sha256", "vocab_size", "eod_id"}
    resharded_from: str | None = None  # the layout a resharded checkpoint was cut from, e.g. "TP2xPP2xDP2"
    optimizer_step: int | None = None  # Adam's step count, kept by a resharded checkpoint


def tag_for(step: int) -> str:
    return f"step_{step:08d}"


def complete_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _TAG.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_TAG.match(p.name).group(1)))


def latest_checkpoint(root: str | Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def read_state(checkpoint: Path) -> TrainerState:
    return TrainerState(**json.loads((checkpoint / STATE_FILE).read_text()))


def capture_rng() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    tracker = _model_parallel_rng_tracker()
    if tracker is not None:
        state["model_parallel"] = tracker.get_states()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    tracker = _model_parallel_rng_tracker()
    if state.get("model_parallel") and tracker is not None:
        tracker.set_states(state["model_parallel"])


def _model_parallel_rng_tracker():
    """DeepSpeed's per-tensor-rank dropout RNG streams (the engine seeds them when dropout > 0), if seeded."""
    from deepspeed.runtime.activation_checkpointing import checkpointing

    tracker = checkpointing.get_cuda_rng_tracker()
    return tracker if tracker.get_states() else None


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save(root: str | Path, engine, state: TrainerState, keep: int, tokenizer_file: str | Path | None = None) -> Path:
    """Save a checkpoint of `engine` (trainer.engine.TrainerEngine) and the trainer's state, with a copy of
    `tokenizer_file`. Every rank must call it. Returns the final folder."""
    root = Path(root)
    tag = tag_for(state.step)
    partial_tag = f".{tag}.partial"
    partial, final = root / partial_tag, root / tag
    if _rank() == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)  # left by a save that was killed
    _barrier()
    # DeepSpeed's own `latest` file would name the partial folder: this module writes it after the rename.
    from trainer.model.gpt import param_names_in_groups

    # parameter names per optimizer group: a one-process (no ZeRO) optimizer state_dict is by index only
    client_state = {"step": state.step, "param_names_in_groups": param_names_in_groups(engine.ds.module)}
    engine.ds.save_checkpoint(str(root), tag=partial_tag, client_state=client_state, save_latest=False)
    rng_dir = partial / "rng"
    rng_dir.mkdir(parents=True, exist_ok=True)
    torch.save(capture_rng(), rng_dir / f"rank_{_rank():05d}.pt")
    _barrier()
    if _rank() == 0:
        if tokenizer_file is not None:
            shutil.copy2(tokenizer_file, partial / TOKENIZER_FILE)
        state.saved_at = time.time()
        _write_atomic(partial / STATE_FILE, json.dumps(state.__dict__, indent=1, sort_keys=True))
        if final.exists():  # the same step saved again (e.g. a signal right after a periodic save)
            shutil.rmtree(final)
        os.replace(partial, final)
        _write_atomic(root / "latest", tag)
        for old in complete_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in root.glob(".step_*.partial"):  # saves killed before their rename
            shutil.rmtree(stale, ignore_errors=True)
    _barrier()
    return final


def load(checkpoint: Path, engine) -> TrainerState:
    """Load model, optimizer and RNG states into `engine` from a complete checkpoint. Every rank
    must call it."""
    state = read_state(checkpoint)
    if state.resharded_from:
        return _load_resharded(checkpoint, engine, state)
    try:
        engine.load_checkpoint(str(checkpoint.parent), tag=checkpoint.name)
    except FileNotFoundError as error:
        raise CheckpointError(f"DeepSpeed could not load {checkpoint}: {error}") from error
    rng_file = checkpoint / "rng" / f"rank_{_rank():05d}.pt"
    if not rng_file.is_file():
        raise CheckpointError(f"{rng_file} is missing: was the checkpoint written by another topology?")
    restore_rng(torch.load(rng_file, weights_only=False))
    return state


def _load_resharded(checkpoint: Path, engine, state: TrainerState) -> TrainerState:
    """Weights through DeepSpeed; Adam moments from the per-layer files into this launch's optimizer; RNG
    streams seeded afresh from the seed, the step and the rank (they cannot be carried to another layout)."""
    from trainer.fullstate import OPTIMIZER_DIR, layer_of_ds_name, optimizer_file

    path, _ = engine.ds.load_checkpoint(str(checkpoint.parent), tag=checkpoint.name, load_optimizer_states=False,
                                        load_lr_scheduler_states=False)
    if path is None:
        raise CheckpointError(f"DeepSpeed could not load {checkpoint}")
    if (checkpoint / OPTIMIZER_DIR).is_dir():
        tp_rank = engine.tensor_parallel_rank
        moments, cache = {}, {}
        for name, _ in engine.ds.module.named_parameters():
            layer, key = layer_of_ds_name(name)
            if layer not in cache:
                cache[layer] = torch.load(optimizer_file(checkpoint, layer, tp_rank), weights_only=False)
            moments[name] = cache[layer][key]
        set_optimizer_state(engine, moments, state.optimizer_step)
    seed = int(state.config.get("seed", 0)) * 1_000_003 + state.step * 1009 + _rank()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    tracker = _model_parallel_rng_tracker()
    if tracker is not None:
        from deepspeed.runtime.activation_checkpointing import checkpointing

        checkpointing.model_parallel_cuda_manual_seed(seed)
    return state


def set_optimizer_state(engine, moments: dict[str, dict[str, torch.Tensor]], step: int) -> None:
    """Put Adam moments (this rank's full tensor shards, by the pipeline module's parameter names) into the
    engine's optimizer, however ZeRO partitions it across data-parallel ranks.

    Without ZeRO the optimizer is torch's AdamW over the module's parameters. With ZeRO-1 it is AdamW over
    each data-parallel rank's slice of the flattened parameter groups; DeepSpeed records for every
    parameter which fragment of it this rank holds (`_hp_mapping`: the same map its universal-checkpoint
    loader uses), and torch creates no state before the first step, so the state is built here."""
    named = dict(engine.ds.module.named_parameters())
    missing = sorted(set(named) - set(moments))
    if missing:
        raise CheckpointError(f"no optimizer state for {missing[:3]}")
    optimizer = engine.ds.optimizer
    step_tensor = torch.tensor(float(step))
    if engine.zero_stage == 0:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise CheckpointError(f"cannot set the state of a {type(optimizer).__name__}")
        for name, param in named.items():
            optimizer.state[param] = {"step": step_tensor.clone(),
                                      **{k: v.to(param.dtype).reshape(param.shape).clone() for k, v in moments[name].items()}}
        return
    name_of = {id(p): n for n, p in named.items()}
    for group_params, flat in zip(optimizer.bit16_groups, optimizer.single_partition_of_fp32_groups):
        group_state = {"step": step_tensor.clone(), "exp_avg": torch.zeros_like(flat), "exp_avg_sq": torch.zeros_like(flat)}
        for param in group_params:
            mapping = param._hp_mapping
            if mapping is None:  # none of this parameter lies in this rank's slice
                continue
            lp, hp = mapping.lp_fragment_address, mapping.hp_fragment_address
            for key in ("exp_avg", "exp_avg_sq"):
                values = moments[name_of[id(param)]][key].flatten().to(flat.dtype)
                group_state[key].narrow(0, hp.start, hp.numel).copy_(values.narrow(0, lp.start, lp.numel))
        optimizer.optimizer.state[flat] = group_state
