"""A Spark stage against its bare loop in machine CPU-seconds: alternating runs, the median ratio and its spread.

The loop is charged the CPU time of its own process (it needs nothing else); the stage that of the whole
process tree: the driver, Spark's JVM and its Python workers (_cputime.py). Runs alternate loop, stage,
loop, stage, ... so that a change in the machine's load hits both; each stage run is paired with the loop
run just before it, and `ratio` is the median over pairs of loop CPU-s / stage CPU-s (both sides do the
same documents, so that is the stage's documents per CPU-second over the loop's). One noisy pair cannot
move a median of five; `ratio_min` and `ratio_max` show the spread.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from _cputime import tree_cpu_seconds, tree_pids

DEFAULT_REPEATS = 5
SMOKE_REPEATS = 1


@dataclass
class Alternation:
    loop_cpu: list[float] = field(default_factory=list)
    loop_wall: list[float] = field(default_factory=list)
    stage_cpu: list[float] = field(default_factory=list)
    stage_wall: list[float] = field(default_factory=list)
    loop_results: list = field(default_factory=list)
    stage_results: list = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [loop / stage for loop, stage in zip(self.loop_cpu, self.stage_cpu, strict=True)]

    def figures(self, documents: int, unit: str = "docs") -> dict:
        """ratio (median of the paired ratios), its spread, and the medians of each side."""
        ratios = self.ratios()
        loop_cpu, stage_cpu = statistics.median(self.loop_cpu), statistics.median(self.stage_cpu)
        return {
            "ratio": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3),
            "ratio_max": round(max(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
            f"stage_{unit}_per_cpu_s": round(documents / stage_cpu, 1),
            f"loop_{unit}_per_cpu_s": round(documents / loop_cpu, 1),
            "stage_cpu_s": round(stage_cpu, 2),
            "loop_cpu_s": round(loop_cpu, 2),
            "stage_wall_s": round(statistics.median(self.stage_wall), 2),
            "loop_wall_s": round(statistics.median(self.loop_wall), 2),
            "repeats": len(ratios),
        }


def alternate(loop: Callable[[], object], stage: Callable[[], object], repeats: int,
              check: Callable[[object, object], None] | None = None) -> Alternation:
    """Run loop() and stage() alternately `repeats` times; `check(loop_result, stage_result)` after each
    pair (that both did the same work)."""
    runs = Alternation()
    for r in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        runs.loop_results.append(loop())
        runs.loop_wall.append(time.perf_counter() - started)
        runs.loop_cpu.append(time.process_time() - cpu)
        started, pids = time.perf_counter(), tree_pids()
        cpu = tree_cpu_seconds(pids)
        runs.stage_results.append(stage())
        runs.stage_wall.append(time.perf_counter() - started)
        runs.stage_cpu.append(tree_cpu_seconds(pids) - cpu)
        if check is not None:
            check(runs.loop_results[-1], runs.stage_results[-1])
        print(f"run {r + 1}/{repeats}: loop {runs.loop_cpu[-1]:.2f} CPU s ({runs.loop_wall[-1]:.1f} s), "
              f"stage {runs.stage_cpu[-1]:.2f} CPU s ({runs.stage_wall[-1]:.1f} s): "
              f"ratio {runs.ratios()[-1]:.3f}", file=sys.stderr, flush=True)
    return runs
