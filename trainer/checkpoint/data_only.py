"""Checkpoint files are read as data only: torch's weights-only unpickler, never plain pickle.

A checkpoint may come from another user. Plain `torch.load` (DeepSpeed passes weights_only=False) runs
whatever a crafted pickle names; the weights-only unpickler builds tensors and plain types only, plus the
three DeepSpeed classes its ZeRO optimizer files hold, and refuses anything else before running it.
"""

from __future__ import annotations

import functools
import re
import zipfile
from pathlib import Path

import torch

from trainer.checkpoint.state import CheckpointError


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file that holds more than data: refused, never skipped for an older checkpoint."""


@functools.cache
def deepspeed_data_classes() -> tuple:
    """The classes DeepSpeed's ZeRO-1 optimizer files pickle: plain records, built without running code."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return (LossScaler, ZeroStageEnum, fragment_address)


def load_data(path: str | Path, map_location=None, mmap: bool = False):
    """A torch file's contents, read with the weights-only unpickler; CheckpointError names the file when it
    cannot be read, UnsafeCheckpointError when it names a class or function that is not data. `mmap` maps
    the tensors instead of reading them (zip files, torch's format since 1.6)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint is incomplete")
    try:
        with torch.serialization.safe_globals(list(deepspeed_data_classes())):
            return torch.load(path, map_location=map_location or "cpu", weights_only=True,
                              mmap=mmap and zipfile.is_zipfile(path))
    except Exception as error:
        refused = _REFUSED_GLOBAL.search(str(error))
        if refused:
            raise UnsafeCheckpointError(f"{path}: refused, it holds Python objects that are not data (it names "
                                        f"{refused.group(1)}); nothing in it was run") from None
        # truncated, damaged, or not a torch file
        raise CheckpointError(f"{path} cannot be read ({type(error).__name__}: {_summary(error)})") from None


# how torch's weights-only unpickler names a global it will not load, e.g. "unsupported GLOBAL posix.system"
_REFUSED_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL (\S+)", re.IGNORECASE)


def _summary(error: Exception) -> str:
    """The line of torch's message that says what is wrong (it wraps it in paragraphs of advice)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = [line for line in lines if line.startswith(("WeightsUnpickler error", "Unsupported"))]
    return (detail or lines or [""])[0][:300]
