"""Extraction cost against datatrove: its WarcReader -> Trafilatura against our extract stage, per CPU-second.

The same WARC files go through both: a sample crawl (samplecrawl, material ../shared/data: real page
templates and real text) of `--records` records in `--files` files. Every sample crawl ends with a
truncated gzip member (the last record of its last file), and datatrove's WarcReader stops reading a
file there; so the crawl is built with one file more than asked and that last file is left out: both
sides read files that hold only whole records.

- datatrove (FineWeb's extraction): WarcReader (warcio; HTML responses, UTF-8 or cchardet) ->
  Trafilatura (favour_precision, in datatrove's extractor sandbox process) -> JsonlWriter, on
  LocalPipelineExecutor with one task per file and `--workers` workers. Its language filter is left out:
  it downloads its model at run time, and this runs offline.
- ours: the extract stage (`dataprep.pipeline.run`, Spark local[`--workers`]): every record read and
  accounted for, charset detection, CLD2 language identification, jusText, ftfy, Parquet written.

Cost is the machine CPU time of every process a side uses: this driver, Spark's JVM and its Python
workers for ours; this driver, datatrove's pool workers and their extractor processes (reaped children
counted) for datatrove. Both sides are warm (one run each before timing: the JVM and its workers
started, the libraries imported, as on a running cluster); the JVM's own time is left out of
datatrove's runs, where it sits idle. Runs alternate, `--repeats` of each; medians are quoted.
ratio = datatrove CPU-s / ours (higher is better). The datatrove side must write documents: a pipeline
that silently extracts nothing is no baseline, and the bench fails if it does.

    python bench/peer_extract.py [--records 3000] [--files 4] [--workers 2] [--repeats 3] [--smoke]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

from _cputime import tree_cpu_seconds
from _shared import data_folder
from pyspark.sql import SparkSession

from blending.spark_session import get_spark
from dataprep.config import DataprepConfig
from dataprep.extract.stage import ExtractStage
from dataprep.pipeline import run
from samplecrawl import build_sample_crawl

README_FIGURES = ("ratio",)
SKIPPED = 77


def spark_session(workers: int) -> tuple[SparkSession, int]:
    """A local Spark session and the pid of its JVM (spark-submit's process)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    spark = get_spark(f"local[{workers}]", app_name="bench-peer-extract", conf={"spark.ui.showConsoleProgress": "false"})
    return spark, spark.sparkContext._gateway.proc.pid


def ours(spark: SparkSession, files: list[str], out: Path, config: DataprepConfig) -> tuple[float, int, int]:
    """(CPU-s, records in, documents out) of one extract stage run."""
    start = tree_cpu_seconds()
    stats = run(ExtractStage, spark, files, str(out), config, source="bench", overwrite=True)
    return tree_cpu_seconds() - start, stats.in_rows, stats.kept_rows


def theirs(folder: Path, files: list[str], out: Path, workers: int, jvm: int) -> tuple[float, int, int]:
    """(CPU-s, HTML documents read, documents written) of one datatrove run (the idle JVM left out)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    shutil.rmtree(out, ignore_errors=True)
    executor = LocalPipelineExecutor(
        pipeline=[
            WarcReader(str(folder), glob_pattern="*.warc.gz"),
            Trafilatura(favour_precision=True),
            JsonlWriter(str(out / "output")),
        ],
        tasks=len(files), workers=workers, logging_dir=str(out / "logs"), skip_completed=False,
    )
    start = tree_cpu_seconds(excluded=frozenset({jvm}))
    stats = executor.run()
    seconds = tree_cpu_seconds(excluded=frozenset({jvm})) - start
    read = next(s for s in stats.stats if "Warc" in s.name).stats["documents"].total
    written = sum(sum(1 for _ in gzip.open(p, "rt")) for p in (out / "output").glob("*.jsonl.gz"))
    return seconds, read, written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000, help="records in the files both sides read")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="Spark cores and datatrove workers alike")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--material", type=Path, help="samplecrawl material (default: the shared data folder, bench/_shared.py)")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.records, args.files, args.repeats = 80, 2, 1
    missing = [name for name in ("datatrove", "trafilatura", "warcio", "cchardet", "magic") if find_spec(name) is None]
    if missing:
        print(f"not installed: {', '.join(missing)} (pip install -r requirements-bench.txt)", file=sys.stderr)
        return SKIPPED  # cannot run here: make bench reports it as skipped
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from datatrove.utils.logging import logger as datatrove_logger

    datatrove_logger.remove()  # its per-task progress lines would drown the figures

    work = Path(tempfile.mkdtemp(prefix="peer-extract-"))
    try:
        crawl = work / "crawl"
        # One file more, left out: the crawl's last file ends with the truncated record datatrove stops at.
        per_file = args.records // args.files
        build_sample_crawl(crawl, per_file * (args.files + 1), args.files + 1, args.seed, material=args.material or data_folder(args.smoke))
        files = sorted(str(p) for p in crawl.glob("*.warc.gz"))[: args.files]
        kept = work / "files"
        kept.mkdir()
        for f in files:
            os.link(f, kept / Path(f).name)
        files = sorted(str(p) for p in kept.glob("*.warc.gz"))
        config = DataprepConfig()

        # Warm-up: both sides once, as on a running cluster. Its cost (a cold start's, the JVM's start and
        # the imports included) is reported apart, not in the ratio.
        start = tree_cpu_seconds()
        spark, jvm = spark_session(args.workers)
        our_cold = tree_cpu_seconds() - start + ours(spark, files, work / "ours", config)[0]
        their_cold = theirs(kept, files, work / "datatrove" / "run", args.workers, jvm)[0]
        our_runs, their_runs = [], []
        for _ in range(args.repeats):
            our_runs.append(ours(spark, files, work / "ours", config))
            their_runs.append(theirs(kept, files, work / "datatrove" / "run", args.workers, jvm))
            print(f"ours {our_runs[-1][0]:.2f} CPU-s, datatrove {their_runs[-1][0]:.2f} CPU-s", file=sys.stderr)
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    _, our_in, our_out = our_runs[-1]
    _, their_in, their_out = their_runs[-1]
    if their_out == 0:
        raise RuntimeError("datatrove wrote no documents: its pipeline extracted nothing, no baseline")
    our_cpu = statistics.median(r[0] for r in our_runs)
    their_cpu = statistics.median(r[0] for r in their_runs)
    print(f"{len(files)} files, {args.workers} workers, medians of {args.repeats} alternating runs:", file=sys.stderr)
    print(f"  ours       {our_cpu:7.2f} CPU-s  {our_in} WARC records in, {our_out} documents out", file=sys.stderr)
    print(f"  datatrove  {their_cpu:7.2f} CPU-s  {their_in} HTML documents in, {their_out} documents out",
          file=sys.stderr)
    print(f"  ratio (datatrove / ours) {their_cpu / our_cpu:.3f}; first (cold) runs: ours {our_cold:.2f} CPU-s, "
          f"datatrove {their_cold:.2f} CPU-s", file=sys.stderr)
    print(json.dumps({
        "ratio": round(their_cpu / our_cpu, 3),
        "ours_cpu_s": round(our_cpu, 2),
        "datatrove_cpu_s": round(their_cpu, 2),
        "ours_cpu_s_runs": [round(r[0], 2) for r in our_runs],
        "datatrove_cpu_s_runs": [round(r[0], 2) for r in their_runs],
        "ours_records_in": our_in,
        "ours_documents_out": our_out,
        "datatrove_documents_in": their_in,
        "datatrove_documents_out": their_out,
        "ours_cold_cpu_s": round(our_cold, 2),
        "datatrove_cold_cpu_s": round(their_cold, 2),
        "files": len(files),
        "workers": args.workers,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
