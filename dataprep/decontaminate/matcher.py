"""One document against the task index: its matches, then the cuts, pieces and drop reason.

Plain functions over one text, so the Spark stage, the benchmark's bare loop and the tests share them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from dataprep.decontaminate.cuts import cut_range, merge, pieces_between
from dataprep.decontaminate.index import TaskIndex
from dataprep.decontaminate.tokens import window_hashes, word_spans, words

# Drop reasons, in the order they are checked.
CONTAMINATED = "contaminated"  # more than max_splits cuts after merging
NO_CLEAN_PIECE = "no_clean_piece"  # every piece shorter than min_piece_chars
REASONS = (CONTAMINATED, NO_CLEAN_PIECE)


@dataclass(frozen=True, order=True)
class Match:
    position: int  # index of the first matched word
    length: int  # words: the index's n-gram size, or a whole short task text's length
    key: int  # the n-gram's 64-bit hash


class Matcher:
    """Finds the index's n-grams in texts; `exempt` keys ((length, hash) pairs, the corpus's frequent
    n-grams) never match."""

    def __init__(self, index: TaskIndex, exempt: Iterable[tuple[int, int]] = ()):
        self.index = index
        self.word_values = dict(zip(index.vocabulary, index.word_values.tolist()))
        exempt_by_length: dict[int, list[int]] = {}
        for length, key in exempt:
            exempt_by_length.setdefault(length, []).append(key)
        self.keys = {}
        for length, keys in index.keys.items():
            if length in exempt_by_length:
                keys = keys[~np.isin(keys, np.array(exempt_by_length[length], np.uint64))]
            if len(keys):
                self.keys[length] = keys
        self.lengths = tuple(sorted(self.keys))
        self.filters = {length: PresenceFilter(keys) for length, keys in self.keys.items()}

    def matches(self, text: str) -> list[Match]:
        """Every occurrence of an indexed n-gram in the text, by position."""
        if not self.lengths:
            return []
        text_words = words(text)
        if len(text_words) < self.lengths[0]:
            return []
        values = np.fromiter(map(self.word_values.get, text_words, repeat(0)), np.uint64, len(text_words))
        if np.count_nonzero(values) < self.lengths[0]:  # too few words that any task text has
            return []
        found = []
        for length, windows in window_hashes(values, self.lengths).items():
            keys = self.keys[length]
            candidates = self.filters[length].candidates(windows)
            if not len(candidates):
                continue
            hashes = windows[candidates]
            at = np.searchsorted(keys, hashes)
            np.minimum(at, len(keys) - 1, out=at)
            for position in candidates[keys[at] == hashes].tolist():
                # a window with a word outside the vocabulary (value 0) cannot be a task n-gram
                if values[position : position + length].all():
                    found.append(Match(position, length, int(windows[position])))
        return sorted(found)

    def distinct_keys(self, text: str) -> set[tuple[int, int]]:
        return {(m.length, m.key) for m in self.matches(text)}

    def item_ids(self, matches: list[Match]) -> np.ndarray:
        """The distinct ids of the task items whose texts contain any of the matches."""
        if not matches:
            return np.empty(0, np.int32)
        return np.unique(np.concatenate([self.index.items_of(m.length, m.key) for m in matches]))


class PresenceFilter:
    """One bit per bucket of the hash's top bits (about 16 buckets per key): most windows of a document
    are ruled out with one lookup in a few MB instead of a binary search through the keys."""

    def __init__(self, keys: np.ndarray):
        self.bits = min(max(int(len(keys) * 16).bit_length(), 16), 30)
        self.shift = np.uint64(64 - self.bits)
        present = np.zeros(1 << self.bits, bool)
        present[keys >> self.shift] = True
        self.packed = np.packbits(present, bitorder="little")

    def candidates(self, hashes: np.ndarray) -> np.ndarray:
        """Positions of the hashes that may be keys."""
        bucket = hashes >> self.shift
        bits = self.packed[bucket >> np.uint64(3)] >> (bucket & np.uint64(7)).astype(np.uint8)
        return np.flatnonzero(bits & 1)


@dataclass
class Outcome:
    reason: str | None = None  # a drop reason, or None: kept (untouched when there are no cuts)
    cuts: list[tuple[int, int]] = field(default_factory=list)  # merged character ranges removed
    pieces: list[tuple[int, int]] = field(default_factory=list)  # kept pieces' character ranges
    short_pieces: int = 0  # pieces dropped for being under min_piece_chars
    matches: list[Match] = field(default_factory=list)

    @property
    def untouched(self) -> bool:
        return not self.cuts

    def removed_chars(self, length: int) -> int:
        return length - sum(end - start for start, end in self.pieces) if self.cuts else 0


def decontaminate(text: str, matcher: Matcher, cut_chars: int = 200, min_piece_chars: int = 200,
                  max_cuts: int = 10) -> Outcome:
    matches = matcher.matches(text or "")
    if not matches:
        return Outcome()
    spans = word_spans(text)
    cuts = merge([
        cut_range(text, spans[m.position][0], spans[m.position + m.length - 1][1], cut_chars) for m in matches
    ])
    if len(cuts) > max_cuts:
        return Outcome(CONTAMINATED, cuts, [], 0, matches)
    between = pieces_between(len(text), cuts)
    kept = [(start, end) for start, end in between if end - start >= min_piece_chars]
    reason = None if kept else NO_CLEAN_PIECE
    return Outcome(reason, cuts, kept, len(between) - len(kept), matches)
