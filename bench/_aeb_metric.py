"""The article-extraction-benchmark's metric (scrapinghub/article-extraction-benchmark, evaluate.py).

Per page: the texts are tokenised as `\\w+` runs (case kept), cut into 4-token shingles (a text of
fewer than 4 tokens is one shorter shingle; no token, no shingle), and shingle multisets are compared:
TP = shared count, FP = predicted surplus, FN = missing. TP/FP/FN are divided by their sum so that every
page weighs the same. Precision is the mean over pages with TP + FP > 0 (an empty prediction is left
out of precision), recall the mean over pages with TP + FN > 0 (an empty prediction counts 0 there);
F1 = 2PR / (P + R) of those means.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter

_TOKEN = re.compile(r"\w+")
SHINGLE_SIZE = 4


def shingles(text: str, n: int = SHINGLE_SIZE) -> Counter:
    tokens = _TOKEN.findall(text or "")
    if not tokens:
        return Counter()
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)))


def page_counts(true: str, pred: str) -> tuple[float, float, float]:
    """Normalised (TP, FP, FN) of one page."""
    true_shingles, pred_shingles = shingles(true), shingles(pred)
    tp = float(sum((true_shingles & pred_shingles).values()))
    fp = float(sum((pred_shingles - true_shingles).values()))
    fn = float(sum((true_shingles - pred_shingles).values()))
    total = tp + fp + fn
    if total > 0:
        return tp / total, fp / total, fn / total
    return tp, fp, fn


def _precision(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fp == 0:
        return 0.0
    return tp / (tp + fp)


def _recall(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fn == 0:
        return 0.0
    return tp / (tp + fn)


def page_precision(true: str, pred: str) -> float:
    return _precision(*page_counts(true, pred))


def page_recall(true: str, pred: str) -> float:
    return _recall(*page_counts(true, pred))


def scores(counts: list[tuple[float, float, float]]) -> dict[str, float]:
    """Mean precision, mean recall and their F1 over pages, as the benchmark aggregates them."""
    precisions = [_precision(*c) for c in counts if c[0] + c[1] > 0]
    recalls = [_recall(*c) for c in counts if c[0] + c[2] > 0]
    precision = statistics.mean(precisions) if precisions else 0.0
    recall = statistics.mean(recalls) if recalls else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}
