"""GPT-3-style decoder as a sequence of pipeline layers.

tokens -> [tied word embedding] -> [position embedding] -> [transformer block] x L -> [final LayerNorm]
       -> [tied word embedding as the output layer: vocabulary-sliced logits] -> loss

Pre-LayerNorm blocks, learned positions, GELU MLP, causal attention through scaled_dot_product_attention.
Activations are [batch, seq, hidden] between layers. Megatron tensor slicing: column-parallel QKV and first
MLP layer, row-parallel output projections, vocabulary-parallel embedding, logits and cross-entropy.
The same specs build DeepSpeed's `PipelineModule` (trainer.engine) and a plain `SequentialGPT`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from deepspeed.pipe import LayerSpec, TiedLayerSpec
from torch import nn

from trainer.config import ModelConfig, check_model_shape
from trainer.model import tensor_parallel as tp
from trainer.model.init import init_constant_, init_normal_, output_layer_std

EMBEDDING_KEY = "embed"
EMBEDDING_WEIGHT = "embedding.weight"  # the attribute DeepSpeed keeps in sync between first and last stage


@dataclass(frozen=True)
class ModelShape:
    """What every layer needs: the model config, the padded vocabulary and the seed of the weights."""

    model: ModelConfig
    padded_vocab: int
    seed: int
    params_dtype: torch.dtype = torch.float32

    @property
    def std(self) -> float:
        return self.model.resolved_init_std


def model_shape(model: ModelConfig, tensor_parallel: int, seed: int, pipeline_parallel: int = 1) -> ModelShape:
    """The shape of a model for a TP x PP layout, checked by the config (ConfigError if it cannot be built)."""
    check_model_shape(model, tensor_parallel, pipeline_parallel)
    return ModelShape(model=model, padded_vocab=model.padded_vocab_size(tensor_parallel), seed=seed)


class LayerNorm(nn.LayerNorm):
    def __init__(self, shape: ModelShape):
        super().__init__(shape.model.hidden_size, eps=shape.model.layernorm_epsilon, dtype=shape.params_dtype)


class WordEmbedding(nn.Module):
    """Vocabulary-parallel token embedding; tied with the output layer (`lm_logits`)."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.embedding = tp.VocabParallelEmbedding(shape.padded_vocab, shape.model.hidden_size,
                                                   params_dtype=shape.params_dtype)
        init_normal_(self.embedding.weight, seed=shape.seed, name=self.full_name("embedding.weight"),
                     std=shape.std, tp_rank=tp.tensor_parallel_rank(), valid_rows=shape.model.vocab_size)

    @staticmethod
    def full_name(key: str) -> str:
        """The layout-independent name of this layer's tensor `key` (init seeds, checkpoints)."""
        return "embedding.word." + key.removeprefix("embedding.")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens)


def lm_logits(word_embedding: WordEmbedding, hidden: torch.Tensor) -> torch.Tensor:
    """The output layer: hidden states times the tied embedding, giving this rank's vocabulary slice."""
    return tp.vocab_parallel_logits(hidden, word_embedding.embedding.weight)


class PositionEmbedding(nn.Module):
    """Adds learned positions (replicated on tensor-parallel ranks), then embedding dropout."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.dropout = shape.model.dropout
        self.weight = nn.Parameter(torch.empty(shape.model.seq_length, shape.model.hidden_size,
                                               dtype=shape.params_dtype))
        init_normal_(self.weight, seed=shape.seed, name=self.full_name("weight"), std=shape.std,
                     tp_rank=tp.tensor_parallel_rank())

    @staticmethod
    def full_name(key: str) -> str:
        return "embedding.position." + key

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        seq = hidden.shape[1]
        if seq > self.weight.shape[0]:
            raise ValueError(f"sequence of {seq} tokens is longer than seq_length {self.weight.shape[0]}")
        hidden = hidden + self.weight[:seq].unsqueeze(0)
        return tp.dropout(hidden, self.dropout, self.training, sliced=False)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + Attn(LN(x)), then x + MLP(LN(x)); layer_number is 0-based and global."""

    def __init__(self, shape: ModelShape, layer_number: int):
        super().__init__()
        cfg = shape.model
        h = cfg.hidden_size
        world = tp.tensor_parallel_world_size()
        self.local_heads = cfg.num_attention_heads // world
        self.head_dim = h // cfg.num_attention_heads
        self.dropout = cfg.dropout
        self.layer_number = layer_number

        self.ln_attention = LayerNorm(shape)
        # output features ordered [head, (q, k, v), head_dim]: a contiguous slice holds whole heads
        self.qkv = tp.ColumnParallelLinear(h, 3 * h, params_dtype=shape.params_dtype)
        self.attention_out = tp.RowParallelLinear(h, h, params_dtype=shape.params_dtype)
        self.ln_mlp = LayerNorm(shape)
        self.fc1 = tp.ColumnParallelLinear(h, 4 * h, params_dtype=shape.params_dtype)
        self.fc2 = tp.RowParallelLinear(4 * h, h, params_dtype=shape.params_dtype)
        self._initialize(shape)

    def full_name(self, key: str) -> str:
        return f"layers.{self.layer_number}.{key}"

    def _initialize(self, shape: ModelShape) -> None:
        rank = tp.tensor_parallel_rank()
        out_std = output_layer_std(shape.std, shape.model.num_layers)
        for module_name, std in (("qkv", shape.std), ("attention_out", out_std), ("fc1", shape.std),
                                 ("fc2", out_std)):
            module = getattr(self, module_name)
            init_normal_(module.weight, seed=shape.seed, name=self.full_name(f"{module_name}.weight"),
                         std=std, tp_rank=rank)
            init_constant_(module.bias, 0.0)
        for norm in (self.ln_attention, self.ln_mlp):
            init_constant_(norm.weight, 1.0)
            init_constant_(norm.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._attention(self.ln_attention(x))
        mlp = self.fc2(F.gelu(self.fc1(self.ln_mlp(x))))
        return x + tp.dropout(mlp, self.dropout, self.training, sliced=False)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        qkv = self.qkv(x).view(batch, seq, self.local_heads, 3, self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(dim=3))  # [batch, heads, seq, head_dim]
        p = self.dropout if self.training else 0.0
        with tp.model_parallel_rng_context(p > 0.0):  # heads are sliced: per-rank dropout masks
            context = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        context = context.transpose(1, 2).reshape(batch, seq, self.local_heads * self.head_dim)
        return tp.dropout(self.attention_out(context), self.dropout, self.training, sliced=False)


class FinalLayerNorm(LayerNorm):
    def __init__(self, shape: ModelShape):
        super().__init__(shape)
        init_constant_(self.weight, 1.0)
        init_constant_(self.bias, 0.0)

    @staticmethod
    def full_name(key: str) -> str:
        return "final_norm." + key


class GPTLoss:
    """Mean token cross-entropy from vocabulary-sliced logits. The padded vocabulary rows are masked out of
    the softmax, so the loss (and its gradient) is that of the unpadded model whatever the padding.

    `labels` is a [batch, seq] int64 tensor, or a (labels, loss_mask) pair where loss_mask weights tokens
    (0 = ignore)."""

    __name__ = "GPTLoss"

    def __init__(self, shape: ModelShape):
        self.vocab_size = shape.model.vocab_size
        self.padded_vocab = shape.padded_vocab

    def __call__(self, logits: torch.Tensor, labels) -> torch.Tensor:
        loss_mask = None
        if isinstance(labels, (tuple, list)):
            labels, loss_mask = labels
        start, end = tp.vocab_range(self.padded_vocab)
        if end > self.vocab_size:  # this rank holds padded rows
            padded = torch.arange(start, end, device=logits.device) >= self.vocab_size
            logits = logits.masked_fill(padded, float("-inf"))
        losses = tp.vocab_parallel_cross_entropy(logits.float(), labels)
        if loss_mask is None:
            return losses.mean()
        loss_mask = loss_mask.to(losses.dtype)
        return (losses * loss_mask).sum() / loss_mask.sum().clamp(min=1.0)


def gpt_layer_specs(shape: ModelShape) -> list:
    """The pipeline's layers; DeepSpeed partitions stages by TransformerBlock."""
    specs = [
        TiedLayerSpec(EMBEDDING_KEY, WordEmbedding, shape, tied_weight_attr=EMBEDDING_WEIGHT),
        LayerSpec(PositionEmbedding, shape),
    ]
    specs += [LayerSpec(TransformerBlock, shape, n) for n in range(shape.model.num_layers)]
    specs += [
        LayerSpec(FinalLayerNorm, shape),
        TiedLayerSpec(EMBEDDING_KEY, WordEmbedding, shape, forward_fn=lm_logits, tied_weight_attr=EMBEDDING_WEIGHT),
    ]
    return specs


class SequentialGPT(nn.Module):
    """The same layers run one after the other in one process (tensor parallelism still applies): the
    baseline of bench/trainer_overhead.py and a reference for tests."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.loss_fn = GPTLoss(shape)
        self.layers = nn.ModuleList()
        self._calls = []
        tied: dict[str, nn.Module] = {}
        for spec in gpt_layer_specs(shape):
            if isinstance(spec, TiedLayerSpec):
                if spec.key not in tied:
                    tied[spec.key] = spec.build()
                    self.layers.append(tied[spec.key])
                module = tied[spec.key]
                self._calls.append(module if spec.forward_fn is None else _bind(spec.forward_fn, module))
            else:
                module = spec.build()
                self.layers.append(module)
                self._calls.append(module)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens
        for call in self._calls:
            x = call(x)
        return x


def _bind(fn, module):
    return lambda x: fn(module, x)


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Megatron's rule: matrices decay, biases and LayerNorm parameters do not."""
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def param_names_in_groups(module: nn.Module) -> list[list[str]]:
    """The parameter names of each group of `weight_decay_groups`, in the optimizer's order."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(name)
    return [decay, no_decay]
