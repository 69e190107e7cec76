"""CPU time of a benchmark's whole process tree: Spark's JVM and Python workers included."""

from __future__ import annotations

import os
from pathlib import Path


def _processes() -> tuple[dict[int, int], dict[int, int]]:
    """(parent of each process, its CPU ticks: own and of its reaped children)."""
    parents, times = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return parents, times


def tree_pids() -> set[int]:
    """This process and all its descendants now."""
    parents, _ = _processes()
    tree, frontier = set(), {os.getpid()}
    while frontier:
        tree |= frontier
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - tree
    return tree


def tree_cpu_seconds(seen: set[int] = frozenset(), excluded: frozenset[int] = frozenset()) -> float:
    """CPU time of this process and all its descendants (the Spark JVM, its Python workers), reaped ones
    included, less the subtrees of `excluded` (an idle JVM beside a peer's run); and of the processes in
    `seen` (an earlier tree_pids()) that still run but have left the tree: a Python worker whose daemon
    exited is adopted by init, and its time would vanish otherwise."""
    parents, times = _processes()
    tree, frontier = set(), {os.getpid()}
    while frontier:
        tree |= frontier
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in excluded} - tree
    return sum(times.get(pid, 0) for pid in tree | set(seen)) / os.sysconf("SC_CLK_TCK")
