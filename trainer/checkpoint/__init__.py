"""Trainer checkpoints: atomic, self-describing, resumed exactly, readable in any layout.

    state.py      the folder: trainer_state.json, tags, finding complete checkpoints
    data_only.py  reading a checkpoint file as data, never running what a crafted pickle names
    live.py       save and load of a running job, through trainer.engine.TrainerEngine; which one resumes
    layout.py     the one table of the model's tensors in DeepSpeed's files, derived from the model
    full.py       full tensors from any TP x PP x DP checkpoint, and a checkpoint for another layout

This package imports the light state.py and live.py; layout.py and full.py build the model's layers
(megatron-core, DeepSpeed) and are imported by those who need them. Details: docs/contracts.md.
"""

from trainer.checkpoint.data_only import UnsafeCheckpointError
from trainer.checkpoint.live import load, newest_loadable, save
from trainer.checkpoint.state import (
    STATE_FILE,
    TOKENIZER_FILE,
    CheckpointError,
    TrainerState,
    complete_checkpoints,
    latest_checkpoint,
    read_state,
    resolve_checkpoint,
    tag_for,
)

__all__ = [
    "STATE_FILE",
    "TOKENIZER_FILE",
    "CheckpointError",
    "TrainerState",
    "complete_checkpoints",
    "latest_checkpoint",
    "UnsafeCheckpointError",
    "load",
    "newest_loadable",
    "read_state",
    "resolve_checkpoint",
    "save",
    "tag_for",
]
