"""Extract throughput: the Spark stage against a bare Python loop doing the same per-record work, per CPU-second.

On a sample crawl (samplecrawl; by default 12,000 records in 4 files: a Common Crawl WARC file holds
some 35,000, so a task's fixed cost weighs on few records here already) this measures, in one run:
  - loop:      for each file, for each record: read_warc + extract_record (ExtractStage.rows_of_file),
               then the same output as the stage: Parquet files bucketed by doc_id, sorted, and the
               dropped rows' index (_bare_write.py); no Spark
  - local[1]:  the extract stage on a one-core Spark (one task per file, Arrow batches, the bucketed write)
  - local[2]:  the same on two cores
Loop and stage runs alternate, `--repeats` (5) of each (_alternate.py). ratio = the median over pairs of
the loop's CPU-seconds over local[1]'s (machine CPU of every process: driver, JVM, Python workers), with
its spread (goal >= 0.9); local2_speedup = local[1]'s median wall time over local[2]'s (goal >= 1.7).
Then a per-phase profile of the per-record path (the loop with each step timed). The last line printed
is one JSON object of the figures.

    python bench/extract_throughput.py [--records 12000] [--files 4] [--repeats 5] [--smoke]
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

import pyarrow as pa
from _alternate import DEFAULT_REPEATS, SMOKE_REPEATS, alternate
from _bare_write import write_bucketed
from pyspark.sql import SparkSession

import dataprep.extract.record as record_module
from blending.spark_session import get_spark
from dataprep.config import DataprepConfig
from dataprep.extract.stage import ExtractStage
from dataprep.extract.warc_reader import read_warc
from dataprep.framework.spark_rows import FILE_COUNTS
from dataprep.pipeline import run
from samplecrawl import build_sample_crawl

FIXTURE_WARC = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "warc" / "warcio_example.warc.gz"

README_FIGURES = ("ratio", "ratio_min", "ratio_max", "local2_speedup")  # what bench/_results.py puts in the README


def bare_loop(files: list[str], config: DataprepConfig, out: Path) -> int:
    """The stage's per-record work and its output, without Spark; the records read."""
    stage = ExtractStage.with_options(config, source="bench")
    schema = stage.row_schema()
    # a file's counts row (its input retries) adds to the stage's tally, not to its output
    rows = [row for path in files for row in stage.rows_of_file(path) if FILE_COUNTS not in row]
    write_bucketed(pa.Table.from_pylist(rows, schema=schema), out, config.output)
    return len(rows)


def spark_session(master: str) -> SparkSession:
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    return get_spark(master, app_name="bench-extract", conf={"spark.ui.showConsoleProgress": "false"})


def compare(master: str, files: list[str], out: Path, config: DataprepConfig, repeats: int):
    """Alternating loop and stage runs on a warm session; (Alternation, records, kept records)."""
    spark = spark_session(master)
    # Warm-up: start the JVM's executor and a Python worker (imports included), as on a running cluster.
    run(ExtractStage, spark, [str(FIXTURE_WARC)], str(out / "warmup"), config, overwrite=True, log=lambda *_: None)

    def check(loop_rows, stats):
        if stats.in_rows != loop_rows:
            raise RuntimeError(f"Spark read {stats.in_rows} records, the loop {loop_rows}")

    runs = alternate(lambda: bare_loop(files, config, out / "loop"),
                     lambda: run(ExtractStage, spark, files, str(out / master), config, source="bench",
                                 overwrite=True, log=lambda *_: None),
                     repeats, check)
    spark.stop()
    return runs, runs.loop_results[-1], runs.stage_results[-1].kept_rows


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
    parser.add_argument("--records", type=int, default=12000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.records, args.files, args.repeats = 60, 2, SMOKE_REPEATS

    work = Path(tempfile.mkdtemp(prefix="extract-bench-"))
    try:
        build_sample_crawl(work / "crawl", args.records, args.files, args.seed)
        files = sorted(str(p) for p in (work / "crawl").glob("*.warc.gz"))
        config = DataprepConfig()

        local1, rows, kept = compare("local[1]", files, work / "out", config, args.repeats)
        local2, _, _ = compare("local[2]", files, work / "out", config, args.repeats)
        phases = profile(files, config)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = sum(phases.values())
    print("per-record path, share of time:", file=sys.stderr)
    for name, seconds in phases.items():
        print(f"  {name:<28} {seconds:8.2f} s  {100 * seconds / total:5.1f}%", file=sys.stderr)
    figures = {
        **local1.figures(rows, unit="records"),
        "records": rows,
        "kept": kept,
        "files": len(files),
        "local2_speedup": round(statistics.median(local1.stage_wall) / statistics.median(local2.stage_wall), 3),
        "local2_ratio": local2.figures(rows)["ratio"],  # loop CPU-s over local[2]'s
        "profile_s": phases,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
