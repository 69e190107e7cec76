"""A pipeline run with its cost: CPU and wall seconds of each stage, marked as run_pipeline starts it
(each stage's segment runs from its start to the next stage's, the last to the run's end), and the
memory peaks of the process tree.

`python -m dataprep run --measure-cost` writes what this measures to DIR/cost.json; the estimate
measures its runs with it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from blending.stage_stats import StageStats
from dataprep.config import DataprepConfig
from dataprep.estimate.meter import MemoryPeaks, TreeMeter, process_age_s
from dataprep.estimate.model import Cost
from dataprep.pipeline import SourceSpec, run_pipeline, source_stages

COST_FILE = "cost.json"


@dataclass
class RunCost:
    stages: dict[str, Cost]
    done: list[tuple[str, StageStats]] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # stages whose finished output was reused, not run

    @property
    def total(self) -> Cost:
        return Cost(sum(c.cpu_s for c in self.stages.values()), sum(c.wall_s for c in self.stages.values()))


def measured_run(spark, meter: TreeMeter, sources: list[SourceSpec], out: str, config: DataprepConfig,
                 options: dict, log=print, **kwargs) -> RunCost:
    """run_pipeline with a mark at every stage's start and at the end."""
    first = len(meter.marks)
    reused = []
    done = run_pipeline(spark, sources, out, config, options, log=log, on_stage=meter.mark,
                        on_reused=reused.append, **kwargs)
    meter.mark("end")
    stages: dict[str, Cost] = {}
    for label, wall, cpu in meter.segments(first):
        before = stages.get(label, Cost(0.0, 0.0))  # one stage per source: their segments add up
        stages[label] = Cost(before.cpu_s + cpu, before.wall_s + wall)
    return RunCost(stages, done, reused)


def startup_cost(meter: TreeMeter) -> Cost:
    """What the process cost until now (its imports, the JVM's start): called once the session is up."""
    meter.mark("startup")
    return Cost(meter.marks[-1][2], process_age_s())


def run_measured(spark, sources: list[SourceSpec], out: str, config: DataprepConfig, options: dict,
                 **kwargs) -> list[tuple[str, StageStats]]:
    """`run --measure-cost`: run_pipeline, then OUT/cost.json (cost_record)."""
    meter = TreeMeter()
    startup = startup_cost(meter)
    meter.start()
    try:
        run = measured_run(spark, meter, sources, out, config, options, **kwargs)
    finally:
        meter.stop()
    if set(run.reused) >= set(run.stages) and (Path(out) / COST_FILE).is_file():
        print(f"cost: every stage reused; {Path(out) / COST_FILE} kept from the run that made them")
        return run.done
    kinds = {s.name for s in source_stages()}
    input_bytes = sum(stats.in_bytes for _, stats in run.done if stats.stage in kinds)
    path = write_cost(out, cost_record(startup, run, meter.peaks, spark.sparkContext.defaultParallelism, input_bytes))
    print(f"cost: {run.total.cpu_s + startup.cpu_s:.1f} CPU-s, {run.total.wall_s + startup.wall_s:.1f} s -> {path}")
    return run.done


def cost_record(startup: Cost, run: RunCost, peaks: MemoryPeaks, local_cores: int, input_bytes: int | None) -> dict:
    """What cost.json holds: seconds of the session's start and of each stage, memory peaks, the setting."""
    total = Cost(startup.cpu_s + run.total.cpu_s, startup.wall_s + run.total.wall_s)
    return {"version": 1, "local_cores": local_cores, "input_bytes": input_bytes, "startup": asdict(startup),
            "stages": {name: asdict(cost) for name, cost in run.stages.items()}, "total": asdict(total),
            "memory": asdict(peaks), "reused": run.reused,
            "note": "CPU of this process tree (driver, JVM, Python workers); a stage in `reused` was not run "
                    "(its finished output was reused): it cost what checking it did"}


def write_cost(folder: str, record: dict) -> Path:
    path = Path(folder) / COST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
