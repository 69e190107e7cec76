"""The paper's cut and split rules on one text, in character offsets of the original text.

A match [start, end) is cut with `cut_chars` characters on each side; the cut then extends left to just
after the previous '.', '!' or '?' and right through the next one, or to the text's edge (Megatron's
filter_ngrams.py). Overlapping or touching cuts merge. The text between cuts forms pieces; pieces under
`min_piece_chars` are dropped.
"""

from __future__ import annotations

SENTENCE_ENDS = frozenset(".!?")


def cut_range(text: str, start: int, end: int, cut_chars: int) -> tuple[int, int]:
    left = start - cut_chars
    while left > 0 and text[left] not in SENTENCE_ENDS:
        left -= 1
    left = left + 1 if left > 0 else 0  # keep the sentence end; at the edge, cut from 0
    right = end + cut_chars
    while right < len(text) and text[right] not in SENTENCE_ENDS:
        right += 1
    return left, min(right + 1, len(text))  # the sentence end goes with the cut


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def pieces_between(length: int, cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The non-empty ranges of a text of `length` characters that no (merged, sorted) cut covers."""
    pieces, position = [], 0
    for start, end in cuts:
        if start > position:
            pieces.append((position, start))
        position = max(position, end)
    if position < length:
        pieces.append((position, length))
    return pieces
