"""What a checkpoint folder is: its name, its trainer_state.json, and how complete ones are found.

The folder layout and the rules of a save are in docs/contracts.md ("The trainer checkpoint").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

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


def read_state(checkpoint: Path) -> TrainerState:
    path = checkpoint / STATE_FILE
    try:
        return TrainerState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path} cannot be read ({type(error).__name__}: {error})") from None


def state_json(state: TrainerState) -> str:
    return json.dumps(state.__dict__, indent=1, sort_keys=True)

