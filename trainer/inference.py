"""A checkpoint of any TP x PP layout as one process's model, for evaluation and export.

    model = load_model("out/train/tiny-cpu")            # a run folder (its newest checkpoint) or a checkpoint
    logprobs = model.log_probs(token_batch)              # [batch, seq, vocab], padding excluded
    text = model.tokenizer.decode(...)

The shards are joined in memory (trainer.checkpoint.full) and loaded into the same layers the trainer runs
(trainer.model.gpt.SequentialGPT, tensor parallelism of one), so the model must fit in one host's
memory. Its logits are over the tokenizer's vocabulary: Megatron's padding rows are cut off.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from trainer.checkpoint import TOKENIZER_FILE, CheckpointError, resolve_checkpoint

if TYPE_CHECKING:
    from trainer.checkpoint.full import FullState


def quiet_imports() -> None:
    """megatron-core warns at import about optional GPU libraries (imported with the model's layers)."""
    for pattern in (r"Transformer Engine and Apex are not installed", r".*CUDA_DEVICE_MAX_CONNECTIONS"):
        warnings.filterwarnings("ignore", message=pattern)


@dataclass
class LoadedModel:
    module: torch.nn.Module  # trainer.model.gpt.SequentialGPT, eval mode
    full: FullState
    tokenizer: object  # tokenizers.Tokenizer
    checkpoint: Path
    vocab_size: int
    eod_id: int | None

    @property
    def seq_length(self) -> int:
        return self.full.config.model.seq_length

    @torch.no_grad()
    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """[batch, seq] int64 -> [batch, seq, vocab] logits over the unpadded vocabulary (float32, or the
        model's dtype if wider)."""
        logits = self.module(tokens)[..., : self.vocab_size]
        return logits if logits.dtype == torch.float64 else logits.float()

    @torch.no_grad()
    def log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.logits(tokens), dim=-1)


def load_tokenizer_of(checkpoint: Path):
    from blending.tokenizer import load_tokenizer

    path = checkpoint / TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: this checkpoint was written before checkpoints carried their "
                              "tokenizer; copy the run's tokenizer.json (the manifest's) into it")
    return load_tokenizer(path)


def load_model(path: str | Path, dtype: torch.dtype = torch.float32) -> LoadedModel:
    """`dtype` float64 computes in double precision (for comparisons with other implementations)."""
    quiet_imports()
    from trainer.checkpoint.full import read_model, split
    from trainer.model.gpt import SequentialGPT, model_shape
    from trainer.parallel.groups import one_process_groups

    checkpoint = resolve_checkpoint(path)
    full = read_model(checkpoint)
    cfg = full.config
    cfg.model.dropout = 0.0
    one_process_groups()
    module = SequentialGPT(model_shape(cfg.model, 1, cfg.seed))
    state = {}
    for entry in full.table.tensors.values():  # SequentialGPT keeps the pipeline's layers as layers.{index}
        state[f"layers.{entry.layer}.{entry.key}"] = split(entry, full.params[entry.name], cfg, 1)[0]
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("_extra_state")]
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint}: tensors do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    module.to(dtype).eval()
    tokenizer = load_tokenizer_of(checkpoint)
    info = full.trainer_state.tokenizer or {}
    return LoadedModel(module=module, full=full, tokenizer=tokenizer, checkpoint=checkpoint,
                       vocab_size=cfg.model.vocab_size, eod_id=info.get("eod_id"))
