"""Saving and resuming a running job's checkpoint, through trainer.engine.TrainerEngine only.

A save is atomic: every rank writes into RUN/checkpoints/.step_N.partial/, then rank 0 writes
trainer_state.json and renames the folder into place (docs/contracts.md, "The trainer checkpoint").
A resume reads every file as data only (trainer.checkpoint.data_only) and starts from the newest
checkpoint whose files all read.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from blending.atomic import publish_folder, write_text_atomic
from trainer.checkpoint.data_only import UnsafeCheckpointError, load_data
from trainer.checkpoint.state import (
    STATE_FILE,
    TOKENIZER_FILE,
    CheckpointError,
    TrainerState,
    complete_checkpoints,
    read_state,
    state_json,
    tag_for,
)


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


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
    # parameter names per optimizer group: a one-process (no ZeRO) optimizer state_dict is by index only
    client_state = {"step": state.step, "param_names_in_groups": engine.param_names_in_groups()}
    # DeepSpeed's own `latest` file would name the partial folder: it is written here after the rename
    engine.save_checkpoint(str(root), tag=partial_tag, client_state=client_state, save_latest=False)
    rng_dir = partial / "rng"
    rng_dir.mkdir(parents=True, exist_ok=True)
    torch.save(engine.rng_state(), rng_dir / f"rank_{_rank():05d}.pt")
    _barrier()
    if _rank() == 0:
        if tokenizer_file is not None:
            shutil.copy2(tokenizer_file, partial / TOKENIZER_FILE)
        state.saved_at = time.time()
        write_text_atomic(partial / STATE_FILE, state_json(state))
        publish_folder(partial, final)  # replaces the same step saved again (a signal right after a periodic save)
        write_text_atomic(root / "latest", tag)
        # newer ones are left from before a resume that skipped them as unreadable; this run overwrites them
        complete = complete_checkpoints(root)
        for old in complete[:complete.index(final) + 1][:-keep]:
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
    rng_file = rng_path(checkpoint, _rank())
    if not rng_file.is_file():
        raise CheckpointError(f"{rng_file} is missing: was the checkpoint written by another topology?")
    engine.set_rng_state(load_data(rng_file))
    return state


def rng_path(checkpoint: Path, rank: int) -> Path:
    return checkpoint / "rng" / f"rank_{rank:05d}.pt"


def check_files(checkpoint: Path) -> None:
    """Raise CheckpointError naming the first file of a complete checkpoint that is missing or does not read
    (a truncated or damaged file), UnsafeCheckpointError for one that holds more than data. Tensors are
    mapped, not read, so this costs little more than the files' headers."""
    for path in sorted(checkpoint.rglob("*.pt")):  # first: a crafted file is refused whatever else is wrong
        load_data(path, mmap=True)
    state = read_state(checkpoint)
    parallel = state.config.get("parallel", {})
    model_parallel = parallel.get("tensor", 1) * parallel.get("pipeline", 1)
    engine_files = list(checkpoint.glob("mp_rank_*_model_states.pt"))
    if len(engine_files) != model_parallel:
        raise CheckpointError(f"{checkpoint} holds {len(engine_files)} mp_rank_*_model_states.pt files, its layout "
                              f"needs {model_parallel}: the checkpoint is incomplete")
    if state.data_parallel is not None:  # resharded checkpoints carry no RNG states
        for rank in range(model_parallel * state.data_parallel):
            if not rng_path(checkpoint, rank).is_file():
                raise CheckpointError(f"{rng_path(checkpoint, rank)} is missing: the checkpoint is incomplete")


def newest_loadable(root: Path, report: Callable[[str], None]) -> Path | None:
    """The newest complete checkpoint under `root` whose files all read; each newer one that does not is
    reported with the reason and skipped. A file holding more than data stops the search (UnsafeCheckpointError):
    that is no crash's leftover. Raises CheckpointError when checkpoints exist but none reads."""
    found = complete_checkpoints(root)
    reasons = []
    for candidate in reversed(found):
        try:
            check_files(candidate)
            return candidate
        except UnsafeCheckpointError:
            raise
        except CheckpointError as error:
            report(f"skipping checkpoint {candidate.name}: {error}")
            reasons.append(error)
    if found:
        raise CheckpointError(f"none of the {len(found)} checkpoints under {root} can be read; the newest: {reasons[0]}")
    return None


def _load_resharded(checkpoint: Path, engine, state: TrainerState) -> TrainerState:
    """Weights through DeepSpeed; Adam moments from the per-layer files into this launch's optimizer; RNG
    streams seeded afresh from the seed, the step and the rank (they cannot be carried to another layout)."""
    from trainer.checkpoint.layout import OPTIMIZER_DIR, optimizer_file, tensor_table  # builds megatron layers

    try:
        engine.load_checkpoint(str(checkpoint.parent), tag=checkpoint.name, load_optimizer=False)
    except FileNotFoundError as error:
        raise CheckpointError(f"DeepSpeed could not load {checkpoint}: {error}") from error
    if (checkpoint / OPTIMIZER_DIR).is_dir():
        table = tensor_table(engine.cfg.model)
        tp_rank = engine.tensor_parallel_rank
        moments, cache = {}, {}
        for name in engine.named_parameters():
            entry = table.of_ds_name(name)
            if entry.layer not in cache:
                cache[entry.layer] = load_data(optimizer_file(checkpoint, entry.layer, tp_rank))
            if entry.key not in cache[entry.layer]:
                raise CheckpointError(f"no optimizer state for {name}")
            moments[name] = cache[entry.layer][entry.key]
        engine.set_adam_state(moments, state.optimizer_step)
    engine.seed_rng(int(state.config.get("seed", 0)) * 1_000_003 + state.step * 1009 + _rank())
    return state
