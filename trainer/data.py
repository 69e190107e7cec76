"""Which samples each data-parallel rank feeds the engine, and the unigram baseline of the data.

The train stream is the blended GPTDataset of the manifest: item i holds seq_length + 1 consecutive
tokens of the shuffled document stream (as "tokens" = the first seq_length, "labels" = the last), its
order fixed by the seed alone. A step that starts after `consumed` samples with global
batch G takes samples [consumed, consumed + G). They are dealt as Megatron's pretraining sampler deals
them: in chunks of micro_batch x DP, rank d taking the d-th micro-batch of every chunk. The set of
samples a step trains on, and their order within the step, therefore depend only on the seed and the
consumed count, not on the data-parallel size: a restart, or a restart with another DP size, continues
the same stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


def micro_batch_sample_ids(
    consumed_samples: int, global_batch: int, micro_batch: int, dp_size: int, dp_rank: int
) -> list[range]:
    """Sample indices of each micro-batch that `dp_rank` runs in the step starting at `consumed_samples`."""
    chunk = micro_batch * dp_size
    if global_batch % chunk:
        raise ValueError(f"global batch {global_batch} is not a multiple of micro_batch x DP = {chunk}")
    if not 0 <= dp_rank < dp_size:
        raise ValueError(f"dp_rank {dp_rank} outside [0, {dp_size})")
    first = consumed_samples + dp_rank * micro_batch
    return [range(first + k * chunk, first + k * chunk + micro_batch) for k in range(global_batch // chunk)]


def micro_batches(dataset, batches: Sequence[range]) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
    """The engine's input per micro-batch: (inputs, (labels, loss_mask)), inputs = sample tokens[:-1] and
    labels = tokens[1:] as int64 [micro_batch, seq_length], loss_mask float (0 where megatron-core
    padded a sample)."""
    for ids in batches:
        items = [dataset[i] for i in ids]
        inputs = torch.stack([torch.as_tensor(item["tokens"], dtype=torch.int64) for item in items])
        labels = torch.stack([torch.as_tensor(item["labels"], dtype=torch.int64) for item in items])
        mask = torch.stack([torch.as_tensor(item["loss_mask"], dtype=torch.float32) for item in items])
        yield inputs, (labels, mask)


def blend_unigram_probs(manifest, max_tokens_per_source: int = 50_000_000) -> np.ndarray:
    """Token probabilities of the blended training data: each source's unigram distribution over its
    train shards (read straight from the memory-mapped .bin files, add-one smoothed), mixed with the
    sources' blend weights. Large sources are read up to `max_tokens_per_source` tokens, spread over
    their shards."""
    vocab = manifest.vocab_size
    mixture = np.zeros(vocab, dtype=np.float64)
    for source in manifest.sources.values():
        counts = np.zeros(vocab, dtype=np.int64)
        budget = max(1, max_tokens_per_source // max(1, len(source.train)))
        for shard in source.train:
            tokens = np.memmap(shard.bin_path, dtype=manifest.token_dtype, mode="r")
            counts += np.bincount(tokens[:budget], minlength=vocab)[:vocab]
        mixture += source.weight * (counts + 1.0) / (counts.sum() + vocab)
    return mixture / mixture.sum()


def unigram_cross_entropy(probs: np.ndarray, dataset, num_samples: int) -> float:
    """Cross-entropy (nats per token) of the unigram model `probs` on the labels of the first
    `num_samples` samples of `dataset`, weighted by their loss mask as the model's validation loss is:
    the number a model must beat to have learnt more than token frequencies."""
    log_probs = np.log(probs)
    total, weight = 0.0, 0.0
    for index in range(min(num_samples, len(dataset))):
        item = dataset[index]
        labels, mask = np.asarray(item["labels"]), np.asarray(item["loss_mask"], dtype=np.float64)
        total -= float((log_probs[labels] * mask).sum())
        weight += float(mask.sum())
    return total / weight
