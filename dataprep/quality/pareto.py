"""GPT-3's Pareto filter, deterministic per document (docs/contracts.md, "The Pareto draw").

A document is kept when `pareto_draw > 1 - quality_score`, where pareto_draw is numpy's `pareto(alpha)`
(a Lomax draw, (1 - u) ** (-1 / alpha) - 1) at u = (k + 0.5) / 2**53, k the top 53 bits of
sha256(doc_id + "\\0" + str(seed)). The draw depends on the document alone, never on partitioning, order
or threads. It is computed as expm1(-log1p(-u) / alpha), the same value without the rounding of
1 - u to 1 for the smallest u, so every draw is > 0 and a document scored 1 is always kept.
"""

from __future__ import annotations

import hashlib
import math

DROP_REASON = "low_quality"


def uniform(doc_id: str, seed: int) -> float:
    """u in (0, 1) from the top 53 bits of sha256(doc_id + NUL + str(seed))."""
    digest = hashlib.sha256(f"{doc_id}\0{seed}".encode()).digest()
    k = int.from_bytes(digest[:8], "big") >> 11
    return (k + 0.5) / 2**53


def lomax(u: float, alpha: float) -> float:
    """(1 - u) ** (-1 / alpha) - 1, without rounding 1 - u to 1: > 0 for every u in (0, 1)."""
    return math.expm1(-math.log1p(-u) / alpha)


def pareto_draw(doc_id: str, seed: int, alpha: float) -> float:
    return lomax(uniform(doc_id, seed), alpha)


def pareto_cdf(x: float, alpha: float) -> float:
    """P(draw <= x) = 1 - (1 + x) ** -alpha, the exact distribution the draws follow."""
    return 0.0 if x <= 0 else -math.expm1(-alpha * math.log1p(x))


def keeps(quality_score: float, draw: float) -> bool:
    return draw > 1.0 - quality_score
