"""Words as Megatron's filter_ngrams.py sees them (lowercased `\\w+`), their offsets, and n-gram hashes.

An n-gram's hash is a polynomial over 64-bit word hashes (blake2b of the word), modulo 2**64: defined by
the words alone, so an index built anywhere matches documents hashed anywhere else. Numpy computes the
hashes of every window of a document at once.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

WORD = re.compile(r"\w+")
BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: every power is invertible modulo 2**64
UNKNOWN = np.uint64(0)  # a word no task text contains; no word hashes to it


def words(text: str) -> list[str]:
    """The lowercased `\\w+` words of a text, in order. Words are found in the original text and
    lowercased one by one, so they line up with word_spans() whatever lowercasing does to lengths."""
    found = WORD.findall(text)
    # \w+ words contain no space: one lower() call on the joined words is faster than one per word.
    return " ".join(found).lower().split(" ") if found else []


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character offsets [start, end) in the original text of each word of words(text)."""
    return [m.span() for m in WORD.finditer(text)]


def word_hash(word: str) -> int:
    value = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
    return value or 1


def word_hashes(word_list: list[str]) -> np.ndarray:
    return np.fromiter((word_hash(w) for w in word_list), dtype=np.uint64, count=len(word_list))


def window_hashes(values: np.ndarray, lengths: tuple[int, ...]) -> dict[int, np.ndarray]:
    """{n: hash of every n-word window} for each n in lengths, from the words' hashes.
    hash(w_i .. w_{i+n-1}) = sum_j value(w_{i+j}) * BASE**(n-1-j) mod 2**64."""
    out: dict[int, np.ndarray] = {}
    if not lengths or len(values) < min(lengths):
        return out
    current = values.copy()  # windows of length k, built up one word at a time
    with np.errstate(over="ignore"):
        for k in range(2, max(lengths) + 1):
            if len(values) < k:
                break
            current = current[:-1] * BASE + values[k - 1 :]
            if k in lengths:
                out[k] = current
    if 1 in lengths:
        out[1] = values.copy()
    return out


def text_hash(word_list: list[str]) -> int:
    """The hash of one whole n-gram (the same value window_hashes gives its window)."""
    return int(window_hashes(word_hashes(word_list), (len(word_list),))[len(word_list)][0])
