"""MinHash signatures of a batch of documents at once, equal to datasketch's.

The permutation scheme is datasketch 2.0's "affine32", pinned here: permutation k maps a 32-bit shingle
hash h to a_k * fmix32(h) + b_k mod 2^32 (fmix32: MurmurHash3's finalizer; a_k odd), with (a, b) drawn
exactly as `datasketch.MinHash(num_perm, seed)` draws them, and the signature keeps each permutation's
minimum over the document's shingles. So `signatures(texts)[i]` equals the hashvalues of
`MinHash.bulk([...], num_perm=..., seed=..., hashfunc=shingle_hash)` over the same shingles.

The work is vectorised over a batch: shingle hashes of all its documents (shingles.shingle_hashes),
then each permutation applied to blocks of a few thousand hashes of whole documents, reduced per
document with one `minimum.reduceat`, instead of one datasketch `update` (or `update_batch`) per
document.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from dataprep.dedup.shingles import SHINGLE_WORDS, shingle_hashes

EMPTY = np.uint32(0xFFFFFFFF)  # a permutation's value for a document without shingles
BLOCK_HASHES = 4096  # hashes per block: 260 x 4096 x 4 bytes stay in the CPU's cache


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) as datasketch.MinHash(num_perm, seed, scheme="affine32") draws them, shaped (num_perm, 1)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a.reshape(-1, 1), b.reshape(-1, 1)


def fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def signatures_of_hashes(hashes: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """(documents, num_perm) uint32 signatures from concatenated shingle hashes and per-document counts."""
    a, b = permutations(num_perm, seed)
    out = np.full((len(counts), num_perm), EMPTY, dtype=np.uint32)
    mixed = fmix32(hashes.astype(np.uint32, copy=False))
    ends = np.cumsum(counts)
    starts = ends - counts
    nonempty = np.flatnonzero(counts)
    buffer = np.empty((num_perm, BLOCK_HASHES), dtype=np.uint32)
    i = 0
    while i < len(nonempty):
        # whole documents, up to BLOCK_HASHES hashes (a larger document alone)
        j = i + 1
        while j < len(nonempty) and ends[nonempty[j]] - starts[nonempty[i]] <= BLOCK_HASHES:
            j += 1
        docs = nonempty[i:j]
        lo, hi = starts[docs[0]], ends[docs[-1]]
        block = buffer[:, : hi - lo] if hi - lo <= BLOCK_HASHES else np.empty((num_perm, hi - lo), np.uint32)
        np.multiply(a, mixed[lo:hi], out=block)
        np.add(block, b, out=block)
        out[docs] = np.minimum.reduceat(block, starts[docs] - lo, axis=1).T
        i = j
    return out


def signatures(texts: Sequence[str | None], num_perm: int, seed: int, size: int = SHINGLE_WORDS) -> np.ndarray:
    """MinHash signatures (documents, num_perm) uint32 of a batch of texts."""
    hashes, counts = shingle_hashes(texts, size)
    return signatures_of_hashes(hashes, counts, num_perm, seed)


def band_keys(signature: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) int64: a 64-bit hash of each band's `rows` values and the band's number, so
    documents share a key when they agree on a whole band (and, with probability ~2^-64, by accident:
    a candidate pair that verification then discards)."""
    n = signature.shape[0]
    if bands * rows > signature.shape[1]:
        raise ValueError(f"{bands} bands x {rows} rows need {bands * rows} permutations, have {signature.shape[1]}")
    values = signature[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    keys = _band_constants(rows + 1)
    acc = keys[0] * (np.arange(bands, dtype=np.uint64) + np.uint64(1))
    acc = np.broadcast_to(acc, (n, bands)).copy()
    for r in range(rows):
        acc += values[:, :, r] * keys[r + 1]
    acc ^= acc >> np.uint64(29)  # the low bits of a multilinear sum are weak; fold the high ones in
    return acc.view(np.int64)


@lru_cache(maxsize=4)
def _band_constants(n: int) -> np.ndarray:
    return np.random.RandomState(20_13).randint(0, 1 << 63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
