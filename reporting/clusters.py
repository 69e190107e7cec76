"""Sizes of a dedup stage's duplicate clusters, from the `cluster_id` of its kept and dropped rows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from blending.stages import StageFolder, column_batches
from reporting.figures import KEPT_COLOR, pyplot, save


def cluster_sizes(folder: StageFolder) -> Counter:
    """{cluster size: clusters}; empty when the stage wrote no cluster_id (or kept no dropped rows)."""
    members: Counter = Counter()
    for values in column_batches(folder.parts + folder.dropped_files, "cluster_id"):
        members.update(v for v in values.to_pylist() if v is not None)
    return Counter(members.values())


def plot_clusters(sizes: Counter, label: str, path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(8, 3.8))
    xs = sorted(sizes)
    ax.bar([str(x) for x in xs], [sizes[x] for x in xs], color=KEPT_COLOR)
    ax.set_xlabel("documents in the duplicate cluster")
    ax.set_ylabel("clusters")
    ax.set_title(f"Duplicate clusters ({label}): one document kept per cluster", fontsize=10)
    save(fig, path)
