"""Extract throughput: the Spark job against a bare Python loop over the same per-record functions.

On a sample crawl (samplecrawl, >= 2,000 records in several files) this times, in one run:
  - loop:      for each file, for each record: read_warc + extract_record (ExtractStage.rows_of_file), no Spark
  - local[1]:  the extract stage on a one-core Spark (one task per file, Arrow batches, persist, the write)
  - local[2]:  the same on two cores
each `--repeats` times, medians quoted; loop and Spark runs alternate, so that a change in the
machine's load hits both. ratio = local[1] records/s over the loop's (goal >= 0.8);
local2_speedup = local[2] over local[1] (goal >= 1.7). Then a per-phase profile of the per-record path
(the loop with each step timed). The last line printed is one JSON object of the figures.

    python bench/extract_throughput.py [--records 4000] [--files 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import SparkSession

import dataprep.extract.record as record_module
from blending.spark_session import get_spark
from dataprep.config import DataprepConfig
from dataprep.extract.stage import ExtractStage
from dataprep.extract.warc_reader import read_warc
from dataprep.pipeline import run
from samplecrawl import build_sample_crawl

FIXTURE_WARC = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "warc" / "warcio_example.warc.gz"

README_FIGURES = ("ratio", "local2_speedup")  # the figures bench/_results.py puts in the README table


def bare_loop(files: list[str], config: DataprepConfig) -> tuple[float, int]:
    extractor = ExtractStage.with_options(config, source="bench").rows_of_file
    start = time.perf_counter()
    rows = sum(1 for path in files for _ in extractor(path))
    return time.perf_counter() - start, rows


def spark_session(master: str) -> SparkSession:
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    return get_spark(master, app_name="bench-extract", conf={"spark.ui.showConsoleProgress": "false"})


def alternate(master: str, files: list[str], out: Path, config: DataprepConfig, repeats: int):
    """(loop times, Spark times, records) with loop and Spark runs alternating on a warm session."""
    spark = spark_session(master)
    # Warm-up: start the JVM's executor and a Python worker (imports included), as on a running cluster.
    run(ExtractStage, spark, [str(FIXTURE_WARC)], str(out / "warmup"), config, overwrite=True)
    loop_times, spark_times = [], []
    for _ in range(repeats):
        seconds, rows = bare_loop(files, config)
        loop_times.append(seconds)
        start = time.perf_counter()
        stats = run(ExtractStage, spark, files, str(out / master), config, source="bench", overwrite=True)
        spark_times.append(time.perf_counter() - start)
        if stats.in_rows != rows:
            raise RuntimeError(f"Spark read {stats.in_rows} records, the loop {rows}")
    spark.stop()
    print(f"{master}: {rows} records, {stats.kept_rows} kept; loop {[round(t, 2) for t in loop_times]} s, "
          f"Spark {[round(t, 2) for t in spark_times]} s", file=sys.stderr)
    return loop_times, spark_times, rows


class _Timed:
    """Wraps a function and adds its wall time to a phase."""

    def __init__(self, phases: dict, name: str, fn):
        self.phases, self.name, self.fn = phases, name, fn

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.phases[self.name] = self.phases.get(self.name, 0.0) + time.perf_counter() - start


def profile(files: list[str], config: DataprepConfig) -> dict[str, float]:
    """Seconds per phase of the per-record path, over the whole crawl, by timing each step in place."""
    phases: dict[str, float] = {}
    saved = {name: getattr(record_module, name) for name in ("decode_html", "identify_language", "html_to_text", "fix_text")}

    record_module.decode_html = _Timed(phases, "charset", saved["decode_html"])
    record_module.identify_language = _Timed(phases, "cld2", saved["identify_language"])
    record_module.html_to_text = _Timed(phases, "justext", saved["html_to_text"])
    record_module.fix_text = _Timed(phases, "ftfy", saved["fix_text"])
    try:
        for path in files:
            with open(path, "rb") as f:
                records = read_warc(f, config.extract.max_payload_bytes)
                while True:
                    start = time.perf_counter()
                    raw = next(records, None)
                    phases["read_warc"] = phases.get("read_warc", 0.0) + time.perf_counter() - start
                    if raw is None:
                        break
                    start = time.perf_counter()
                    record_module.extract_record_safely(raw, Path(path).name, "bench", config.extract)
                    phases["record"] = phases.get("record", 0.0) + time.perf_counter() - start
    finally:
        for name, fn in saved.items():
            setattr(record_module, name, fn)
    inner = sum(phases.get(p, 0.0) for p in ("charset", "cld2", "justext", "ftfy"))
    phases["warc_http_parse_and_checks"] = phases.pop("record") - inner
    return {k: round(v, 3) for k, v in sorted(phases.items(), key=lambda kv: -kv[1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="extract-bench-"))
    try:
        build_sample_crawl(work / "crawl", args.records, args.files, args.seed)
        files = sorted(str(p) for p in (work / "crawl").glob("*.warc.gz"))
        config = DataprepConfig()

        loop1, local1, rows = alternate("local[1]", files, work / "out", config, args.repeats)
        loop2, local2, _ = alternate("local[2]", files, work / "out", config, args.repeats)
        phases = profile(files, config)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    loop_rps = rows / statistics.median(loop1)
    local1_rps = rows / statistics.median(local1)
    local2_rps = rows / statistics.median(local2)
    total = sum(phases.values())
    print("per-record path, share of time:", file=sys.stderr)
    for name, seconds in phases.items():
        print(f"  {name:<28} {seconds:8.2f} s  {100 * seconds / total:5.1f}%", file=sys.stderr)
    figures = {
        "records": rows,
        "files": len(files),
        "loop_records_per_s": round(loop_rps, 1),
        "local1_records_per_s": round(local1_rps, 1),
        "local2_records_per_s": round(local2_rps, 1),
        "ratio": round(local1_rps / loop_rps, 3),
        "local2_speedup": round(local2_rps / local1_rps, 3),
        # the same, each Spark median over the median of the loop runs beside it (load drift removed)
        "local2_speedup_vs_loop": round(statistics.median(loop2) / statistics.median(local2) * statistics.median(local1) / statistics.median(loop1), 3),
        "profile_s": phases,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
