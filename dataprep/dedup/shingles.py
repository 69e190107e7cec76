"""Word 5-gram shingles of the normalised text, and the 32-bit shingle hash MinHash permutes.

A word is a run of `\\w` characters of the normalised text (the sample crawl's truth counts them the
same way). A document of n >= 5 words has the n - 4 shingles of 5 consecutive words; one of 1 to 4
words has one shingle of all its words; one without words has none.

The shingle hash, pinned so that signatures are reproducible anywhere (and so that datasketch, given
`shingle_hash` as its `hashfunc`, computes the same signatures):

    word_hash(w)        = xxh3_64(UTF-8 bytes of w), seed 0
    shingle_hash(w1..wk) = ((K0 + K1*word_hash(w1) + ... + Kk*word_hash(wk)) mod 2^64) >> 32

with K0..K5 the fixed odd 64-bit constants below (a multilinear hash over the word hashes, whose top
32 bits are well mixed). Because it is built from word hashes, a batch of documents is hashed with
one xxh3 call per distinct word of the batch and a few numpy operations, instead of one call per shingle.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import xxhash

SHINGLE_WORDS = 5
WORD = re.compile(r"\w+")
_MASK64 = (1 << 64) - 1


def _key(i: int) -> int:
    return int.from_bytes(hashlib.sha256(f"dataprep.dedup shingle key {i}".encode()).digest()[:8], "little") | 1


SHINGLE_KEYS = tuple(_key(i) for i in range(SHINGLE_WORDS + 1))
_KEYS = np.array(SHINGLE_KEYS, dtype=np.uint64)


def words(text: str | None) -> list[str]:
    """The words of the normalised text (normalize_text's whitespace rule does not change them)."""
    return WORD.findall(unicodedata.normalize("NFC", text).lower()) if text else []


def shingles(text: str | None, size: int = SHINGLE_WORDS) -> set[tuple[str, ...]]:
    """The document's set of shingles, each a tuple of words."""
    w = words(text)
    if len(w) < size:
        return {tuple(w)} if w else set()
    return set(zip(*(w[i:] for i in range(size))))


def word_hash(word: str) -> int:
    return xxhash.xxh3_64_intdigest(word.encode("utf-8"))


def shingle_hash(shingle: Sequence[str]) -> int:
    """The 32-bit hash of one shingle (a sequence of words); `shingle_hashes` computes the same in bulk."""
    acc = SHINGLE_KEYS[0]
    for key, word in zip(SHINGLE_KEYS[1:], shingle):
        acc += key * xxhash.xxh3_64_intdigest(word.encode("utf-8"))
    return (acc & _MASK64) >> 32


def shingle_hashes(texts: Sequence[str | None], size: int = SHINGLE_WORDS) -> tuple[np.ndarray, np.ndarray]:
    """The shingle hashes of every document of a batch, concatenated (uint32), and each document's
    shingle count (int64); hashes of a document come in the order of its shingles (duplicates kept)."""
    if not 1 <= size <= SHINGLE_WORDS:
        raise ValueError(f"shingles of 1 to {SHINGLE_WORDS} words are supported, not {size}")
    per_doc = [words(text) for text in texts]
    word_counts = np.fromiter(map(len, per_doc), np.int64, len(per_doc))
    shingle_counts = np.where(word_counts >= size, word_counts - size + 1, np.minimum(word_counts, 1))
    total = int(shingle_counts.sum())
    if total == 0:
        return np.empty(0, np.uint32), shingle_counts
    # Each distinct word of the batch is hashed once; the last slot (hash 0) stands for "no word".
    encoded = pa.array(itertools.chain.from_iterable(per_doc), pa.string()).dictionary_encode()
    word_hashes = np.zeros(len(encoded.dictionary) + 1, dtype=np.uint64)
    word_hashes[:-1] = np.fromiter(
        (xxhash.xxh3_64_intdigest(w.encode("utf-8")) for w in encoded.dictionary.to_pylist()),
        np.uint64,
        len(encoded.dictionary),
    )
    per_word = word_hashes[np.append(encoded.indices.to_numpy(zero_copy_only=False), len(word_hashes) - 1)]
    no_word = len(per_word) - 1

    first_word = np.cumsum(word_counts) - word_counts
    first_shingle = np.cumsum(shingle_counts) - shingle_counts
    doc_of = np.repeat(np.arange(len(per_doc)), shingle_counts)
    start = first_word[doc_of] + (np.arange(total) - first_shingle[doc_of])
    short = word_counts < size  # documents whose one shingle has fewer than `size` words
    width = np.minimum(word_counts, size)[doc_of] if short.any() else None
    acc = np.full(total, _KEYS[0], dtype=np.uint64)
    for k in range(size):
        index = start + k if width is None else np.where(width > k, start + k, no_word)
        acc += per_word[index] * _KEYS[k + 1]
    return (acc >> np.uint64(32)).astype(np.uint32), shingle_counts
