"""Blending: which dataset each training sample comes from.

Megatron's error-tracking rule (megatron/core/datasets/helpers.cpp, build_blending_indices): sample i
goes to the dataset whose realised count lags its target `weight * max(i, 1)` the most (ties: the
lowest index). Every prefix of the stream therefore stays within one sample of each dataset's target:
the paper's tracking of over- and under-sampling, at every point of training. Megatron blends shards,
so a source split into k shards stays within k samples of its weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalize(weights: Sequence[float]) -> list[float]:
    """Weights divided by their sum, in float64 (the same arithmetic as megatron's `normalize`)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not np.all(w > 0):
        raise ValueError(f"weights must be a non-empty list of positive numbers, got {list(weights)}")
    return (w / np.sum(w)).tolist()


def blending_indices(weights: Sequence[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(dataset index, sample index within that dataset) of each of `size` samples.

    `weights` are used as given (megatron passes normalized weights). The arithmetic is the same
    IEEE double expression as the C++ helper, so the result is identical, ties included.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size >= np.iinfo(np.int16).max:
        raise ValueError("at most 32766 datasets can be blended (int16 dataset index)")
    dataset_index = np.empty(size, dtype=np.int16)
    dataset_sample_index = np.empty(size, dtype=np.int64)
    counts = np.zeros(w.size, dtype=np.float64)
    for i in range(size):
        error = w * float(max(i, 1)) - counts
        chosen = int(np.argmax(error))  # first maximum: the lowest index wins ties
        dataset_index[i] = chosen
        dataset_sample_index[i] = int(counts[chosen])
        counts[chosen] += 1.0
    return dataset_index, dataset_sample_index


def prefix_deviation(group_index: np.ndarray, weights: Sequence[float], skip: int = 0) -> float:
    """Largest |share of group j among the first n samples - weight j| over every j and every n > skip."""
    w = normalize(weights)
    n = np.arange(1, group_index.size + 1, dtype=np.float64)
    worst = 0.0
    for j, weight in enumerate(w):
        shares = np.cumsum(group_index == j) / n
        if shares.size > skip:
            worst = max(worst, float(np.abs(shares[skip:] - weight).max()))
    return worst


def shard_weights(source_weight: float, shard_tokens: Sequence[int]) -> list[float]:
    """A source's weight spread over its shards in proportion to their tokens.

    Megatron blends datasets (shards), so a source's share of the stream is the sum over its shards.
    """
    total = sum(shard_tokens)
    if total <= 0:
        raise ValueError("a source split without tokens has no shards to weigh")
    return [source_weight * t / total for t in shard_tokens]
