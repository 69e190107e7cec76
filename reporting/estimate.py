"""The report's "Cost estimate" section: `python -m dataprep estimate`'s projection (estimate.json) beside
what the run itself did (its stages' stats.json, and its cost.json when it ran with --measure-cost)."""

from __future__ import annotations

from reporting.collect import Report
from reporting.page import Page
from reporting.units import human


def _pm(error: float | None) -> str:
    return f" ±{100 * error:.0f}%" if error is not None else ""


def _cpu(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}"


def estimate_rows(estimate: dict, report: Report) -> list[list[str]]:
    """Per stage: projected and real CPU seconds, documents and bytes out (real: '-' where not known)."""
    stages = {s.name: s.stats for s in report.stages}  # the run's own stages, by name
    cost = next(iter(report.costs.values()), {})
    measured, reused = cost.get("stages", {}), set(cost.get("reused", []))
    projected = estimate["projected"]
    rows = [["(start-up)", _cpu(projected["startup"]["cpu_s"]), _cpu(cost.get("startup", {}).get("cpu_s")),
             "", "", "", ""]]
    for stage, p in projected["stages"].items():
        real = stages.get(stage)
        real_cpu = measured.get(stage, {}).get("cpu_s") if stage not in reused else None
        rows.append([stage, _cpu(p["cpu_s"]), _cpu(real_cpu),
                     human(p["documents"]), human(real["out"]["rows"]) if real else "-",
                     human(p["bytes"]), human(real["out"]["bytes"]) if real else "-"])
    total = cost.get("total", {}).get("cpu_s") if cost and not reused else None
    rows.append(["total", _cpu(projected["cpu_s"]) + _pm(projected["cpu_relative_error"]), _cpu(total),
                 human(projected["documents"]) + _pm(projected["documents_relative_error"]), "",
                 human(projected["bytes"]) + _pm(projected["bytes_relative_error"]), ""])
    return rows


def add_estimate(page: Page, report: Report) -> None:
    for label, estimate in report.estimates.items():
        if "projected" not in estimate:
            continue
        listing, sample, projected = estimate["listing"], estimate["sample"], estimate["projected"]
        memory, cores = projected["memory"], projected["cores"]
        page.heading(f"Cost estimate: {label}")
        page.para(f"python -m dataprep estimate ran the pipeline on {len(sample['files'])} of the input's "
                  f"{listing['files']:,} files ({human(sample['bytes'])}B of {human(listing['bytes'])}B, seed "
                  f"{sample['seed']}) and projected the whole input; beside it, what the run did (CPU: its "
                  "cost.json, when it ran with --measure-cost; '-' where the stage was reused or not measured).")
        page.table(["stage", "CPU-s projected", "CPU-s real", "documents projected", "documents real",
                    "bytes projected", "bytes real"], estimate_rows(estimate, report))
        page.para(f"Tokens: {human(projected['tokens'])} ({projected['tokens_method']}). Peak memory per executor "
                  f"of {memory['executor_cores']} cores: JVM {human(memory['jvm_bytes'])}B + "
                  f"{memory['executor_cores']} x Python worker {human(memory['worker_bytes'])}B = "
                  f"{human(memory['per_executor_bytes'])}B. On {cores['cores']} executor cores: "
                  f"{cores['wall_s']:.0f} s of wall time at a parallel efficiency of "
                  f"{cores['parallel_efficiency']:.2f}. ± is about two standard errors of the spread between "
                  "sampled files; the model is in docs/estimate.md.")
