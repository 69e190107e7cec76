"""CPU time and memory of this process's tree: the driver, Spark's JVM and its Python workers.

CPU is what the kernel charged to every process in the tree, reaped children included (utime + stime +
cutime + cstime from /proc/PID/stat), so a Python worker that exits still counts through its parent.
Memory is resident set size: each process's peak (VmHWM) read at every mark, and the current RSS polled
in between, so a worker that exits between marks is still seen.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
POLL_S = 1.0


@dataclass
class Proc:
    pid: int
    parent: int
    name: str
    cpu_s: float


def _processes() -> dict[int, Proc]:
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        fields = rest.split()
        pid = int(stat.parent.name)
        found[pid] = Proc(pid, int(fields[1]), head.split("(", 1)[1],
                          sum(int(f) for f in fields[11:15]) / _TICK)  # utime, stime, cutime, cstime
    return found


def _descendants(procs: dict[int, Proc], root: int) -> set[int]:
    tree, frontier = set(), {root}
    while frontier:
        tree |= frontier
        frontier = {p.pid for p in procs.values() if p.parent in frontier} - tree
    return tree


def _memory(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in bytes; zeros for a process that is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0, 0
    values = {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in lines)
              if k in ("VmRSS", "VmHWM")}
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def process_age_s() -> float:
    """Wall seconds since this process started (its interpreter's start included)."""
    started_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    return float(Path("/proc/uptime").read_text().split()[0]) - started_ticks / _TICK


@dataclass
class MemoryPeaks:
    jvm_bytes: int = 0  # the JVM (in local mode: driver and executor in one)
    worker_bytes: int = 0  # the largest Python worker (a task runs in one)
    driver_bytes: int = 0  # this Python process

    def update(self, other: MemoryPeaks) -> None:
        self.jvm_bytes = max(self.jvm_bytes, other.jvm_bytes)
        self.worker_bytes = max(self.worker_bytes, other.worker_bytes)
        self.driver_bytes = max(self.driver_bytes, other.driver_bytes)


@dataclass
class TreeMeter:
    """Marks (label, wall, CPU) of the process tree, and its memory peaks between start() and stop()."""

    marks: list[tuple[str, float, float]] = field(default_factory=list)
    peaks: MemoryPeaks = field(default_factory=MemoryPeaks)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def cpu_seconds(self) -> float:
        procs = _processes()
        return sum(procs[pid].cpu_s for pid in _descendants(procs, os.getpid()) if pid in procs)

    def mark(self, label: str) -> None:
        self.marks.append((label, time.perf_counter(), self.cpu_seconds()))
        self._sample(peak=True)

    def _sample(self, peak: bool) -> None:
        procs = _processes()
        tree = _descendants(procs, os.getpid())
        jvms = [pid for pid in tree if procs.get(pid) and procs[pid].name == "java"]
        workers = set().union(*(_descendants(procs, jvm) for jvm in jvms)) - set(jvms) if jvms else set()
        seen = MemoryPeaks()
        for pid, attr in [(p, "jvm_bytes") for p in jvms] + [(p, "worker_bytes") for p in workers] + \
                [(os.getpid(), "driver_bytes")]:
            rss, hwm = _memory(pid)
            setattr(seen, attr, max(getattr(seen, attr), hwm if peak else rss))
        self.peaks.update(seen)

    def start(self) -> TreeMeter:
        def poll() -> None:
            while not self._stop.wait(POLL_S):
                self._sample(peak=False)

        self._thread = threading.Thread(target=poll, name="tree-meter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def segments(self, since: int = 0) -> list[tuple[str, float, float]]:
        """(label, wall seconds, CPU seconds) from each mark after index `since` to the next."""
        marks = self.marks[since:]
        return [(label, t1 - t0, c1 - c0) for (label, t0, c0), (_, t1, c1) in zip(marks, marks[1:])]
