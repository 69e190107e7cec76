"""The same GPT trained by a plain PyTorch loop in one process: no DeepSpeed, no pipeline, no ZeRO.

It is the baseline of bench/trainer_overhead.py and the reference the engine's single-process run must
reproduce: same layers and weights (trainer.model.gpt), same AdamW and parameter groups, the loss averaged
over micro-batches, the same global-norm gradient clipping.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from trainer.config import TrainConfig
from trainer.engine import build_optimizer
from trainer.model.gpt import SequentialGPT, model_shape


class PlainTrainer:
    def __init__(self, cfg: TrainConfig):
        """Needs megatron-core's groups for one process (trainer.parallel.groups.init_megatron_groups)."""
        self.cfg = cfg
        self.model = SequentialGPT(model_shape(cfg.model, 1, cfg.seed))
        self.optimizer = build_optimizer(self.model, cfg)
        self.grad_norm: float | None = None

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def train_batch(self, micro_batches: Iterable[tuple]) -> float:
        """One optimizer step over a list of (inputs, labels) micro-batches; returns their mean loss."""
        micro_batches = list(micro_batches)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros(())
        for inputs, labels in micro_batches:
            loss = self.model.loss_fn(self.model(inputs), labels) / len(micro_batches)
            loss.backward()
            total += loss.detach()
        self.grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optimizer.clip_grad))
        self.optimizer.step()
        return float(total)
