"""Exact Jaccard similarity of two documents' shingle sets: what decides a near-duplicate (the
signatures only propose candidates)."""

from __future__ import annotations

from fractions import Fraction

from dataprep.dedup.shingles import SHINGLE_WORDS, shingles


def jaccard_counts(a: set, b: set) -> tuple[int, int]:
    """(|a & b|, |a | b|)."""
    inter = len(a & b) if len(a) <= len(b) else len(b & a)
    return inter, len(a) + len(b) - inter


def at_least(inter: int, union: int, threshold: float) -> bool:
    """inter / union >= threshold, decided exactly (0.8 means 4/5, not the float nearest it). Two
    documents without shingles are not near-duplicates of each other (exact dedup handles equal texts)."""
    if union == 0:
        return False
    t = Fraction(str(threshold))
    return inter * t.denominator >= t.numerator * union


def jaccard(text_a: str | None, text_b: str | None, size: int = SHINGLE_WORDS) -> float:
    inter, union = jaccard_counts(shingles(text_a, size), shingles(text_b, size))
    return inter / union if union else 0.0
