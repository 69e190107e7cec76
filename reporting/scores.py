"""Histograms of a stage's score columns: per column, counts of its kept rows and of each reason's
dropped rows over common bins, streamed a batch at a time with pyarrow (never a whole folder), and the
stacked bar chart of them (kept, then each reason on top)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow.compute as pc

from blending.stages import StageFolder, column_batches, score_columns
from reporting.figures import KEPT_COLOR, pyplot, reason_colors, save

HISTOGRAM_BINS = 20


@dataclass
class Histogram:
    stage: str  # the stage's label
    column: str
    edges: list[float]
    kept: list[int]
    dropped: dict[str, list[int]] = field(default_factory=dict)  # per reason that dropped rows in a bin


def _range(files: list[Path], column: str) -> tuple[float, float] | None:
    low, high = math.inf, -math.inf
    for values in column_batches(files, column):
        bounds = pc.min_max(values).as_py()
        if bounds["min"] is not None:
            low, high = min(low, bounds["min"]), max(high, bounds["max"])
    if low == math.inf:
        return None
    return low, (high if high > low else low + 1.0)


def _count(batches, edges: np.ndarray) -> list[int]:
    total = np.zeros(len(edges) - 1, dtype=np.int64)
    for values in batches:
        data = values.drop_null().to_numpy(zero_copy_only=False)
        total += np.histogram(data[np.isfinite(data)], bins=edges)[0]
    return total.tolist()


def score_histograms(folder: StageFolder, columns: list[str] | None = None, bins: int = HISTOGRAM_BINS,
                     value_range: tuple[float, float] | None = None, label: str | None = None) -> list[Histogram]:
    """Per score column (default: every floating-point column of the kept rows; those of `columns` the kept
    rows have), counts over `bins` bins from `value_range` (default: the values' own range). Dropped rows
    count where the stage kept them in full (--keep-dropped); a column without a value is left out."""
    out = []
    reasons = [r for r, n in folder.dropped_counts.items() if n]
    for column in [c for c in score_columns(folder) if columns is None or c in columns]:
        bounds = value_range or _range(folder.parts + folder.dropped_files, column)
        if bounds is None:
            continue
        edges = np.linspace(bounds[0], bounds[1], bins + 1)
        kept = _count(column_batches(folder.parts, column), edges)
        dropped = {r: _count(column_batches(folder.dropped_files, column, r), edges) for r in reasons}
        dropped = {r: c for r, c in dropped.items() if any(c)}
        if any(kept) or dropped:
            out.append(Histogram(label or folder.name, column, edges.tolist(), kept, dropped))
    return out


def plot_histogram(h: Histogram, target: str | Path | BinaryIO | None = None, *, title: str | None = None,
                   xlabel: str | None = None, log: bool = False, figsize: tuple[float, float] = (6, 2.6),
                   colors: dict | None = None):
    """Stacked bars: kept, then each reason's dropped rows on top, so a bar's height is every row in the
    bin. Saved to `target`, or the figure returned (for figures.png_base64)."""
    plt = pyplot()
    colors = colors or reason_colors(list(h.dropped))
    fig, ax = plt.subplots(figsize=figsize)
    centers = [(a + b) / 2 for a, b in zip(h.edges, h.edges[1:])]
    width = h.edges[1] - h.edges[0]
    ax.bar(centers, h.kept, width=width, color=KEPT_COLOR, label="kept")
    bottom = np.asarray(h.kept, dtype=float)
    for reason, counts in h.dropped.items():
        ax.bar(centers, counts, width=width, bottom=bottom, color=colors.get(reason), label=f"dropped: {reason}")
        bottom += np.asarray(counts)
    ax.set_xlabel(xlabel or h.column, fontsize=9)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("documents (log scale)" if log else "rows", fontsize=9)
    ax.set_title(title or f"{h.stage}: {h.column}", fontsize=10)
    ax.legend(fontsize=8)
    if target is None:
        return fig
    save(fig, target)
    return None
