"""Numbers as the report writes them."""

from __future__ import annotations


def human(n: float | None) -> str:
    """1234567 -> "1.23M"; None -> "-"."""
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"
