"""Synthetic token streams for engine checks and benchmarks: learnable, deterministic, layout-independent.

Sample i is a walk of a fixed random bigram table (each token has a few possible successors), drawn from a
generator seeded by (seed, i), so any data-parallel replica can build exactly its share of a global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class BigramStream:
    def __init__(self, vocab_size: int, seq_length: int, *, seed: int = 0, successors: int = 4):
        self.vocab_size = vocab_size
        self.seq_length = seq_length
        self.seed = seed
        table = torch.Generator().manual_seed(seed)
        self.next_tokens = torch.randint(vocab_size, (vocab_size, successors), generator=table).tolist()

    def sample(self, index: int) -> torch.Tensor:
        """seq_length + 1 tokens (inputs and shifted labels)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index + 1)
        choices = torch.randint(len(self.next_tokens[0]), (self.seq_length,), generator=g).tolist()
        token = int(torch.randint(self.vocab_size, (1,), generator=g))
        tokens = [token]
        for choice in choices:
            token = self.next_tokens[token][choice]
            tokens.append(token)
        return torch.tensor(tokens, dtype=torch.int64)

    def micro_batches(self, first_sample: int, count: int, micro_batch_size: int) -> Iterator[tuple]:
        """`count` micro-batches of consecutive samples starting at `first_sample`, as (inputs, labels)."""
        for m in range(count):
            start = first_sample + m * micro_batch_size
            tokens = torch.stack([self.sample(start + j) for j in range(micro_batch_size)])
            yield tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def replica_micro_batches(stream: BigramStream, *, step_first_sample: int, global_batch: int, micro_batch_size: int,
                          data_parallel_rank: int, data_parallel_size: int) -> Iterator[tuple]:
    """This replica's micro-batches of one global batch: replica r takes the r-th contiguous share."""
    per_replica = global_batch // data_parallel_size
    return stream.micro_batches(step_first_sample + data_parallel_rank * per_replica,
                                per_replica // micro_batch_size, micro_batch_size)
