"""Remote reads: the extract stage over a sample crawl on a local S3 server against the same files on disk.

The bench starts moto's S3 server (a child process, so its CPU time is counted), puts the sample crawl
(samplecrawl, a few thousand records in several files) in a bucket, and runs the extract stage on a
warm local[2] Spark session `--repeats` times each way, alternating: from the local files, and from
s3:// through a warc.paths.gz listing (blending/remote_files.py streams each file with Range-resumable
GETs). Each run is measured in machine CPU-seconds of the whole process tree (the bench, Spark's JVM and
Python workers, moto's server: bench/_cputime.py); both runs must write the same part files.
ratio = median local CPU-s / median remote CPU-s (goal >= 0.9).

Then the memory of a worker reading a big WARC: the crawl's files concatenated (gzip members
concatenate) to --big-gb GB, put in the server, and read through the reader and the WARC framer by a
fresh Python process, whose peak RSS is reported beside the same process's on one small file of the
crawl (what it costs to read nothing much). The last line printed is one JSON object.

    python bench/remote_read.py [--records 3000] [--files 4] [--repeats 3] [--big-gb 1] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _cputime import tree_cpu_seconds  # noqa: E402

from tests.servers import S3Server, aws_test_environment, free_port  # noqa: E402

README_FIGURES = ("ratio", "peak_rss_mb", "small_warc_peak_rss_mb")  # the figures bench/_results.py puts in the README table
BUCKET = "bench-crawl"

_STREAM = """
import resource, sys, time
from blending.remote_files import open_remote
from dataprep.extract.warc_reader import read_warc
start = time.perf_counter()
with open_remote(sys.argv[1]) as f:
    records = sum(1 for _ in read_warc(f, 10 << 20))
    retries = f.raw.retries
print(records, retries, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - start)
"""


def _parts(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("part-*.parquet"))}


def compare_extract(server: S3Server, files: list[Path], work: Path, repeats: int) -> dict:
    from blending.spark_session import get_spark
    from dataprep.config import DataprepConfig
    from dataprep.pipeline import run

    base = server.create_bucket(BUCKET) + "/"
    for path in files:
        server.put(f"{base}crawl/{path.name}", path.read_bytes())
    listing = work / "warc.paths"
    listing.write_text("".join(f"crawl/{p.name}\n" for p in files))
    config = DataprepConfig()
    spark = get_spark("local[2]", app_name="bench-remote-read", conf={"spark.ui.showConsoleProgress": "false"})
    ways = {"local": dict(inputs=[str(p) for p in files]), "remote": dict(inputs=[str(listing)], base=base)}

    def once(way: str) -> tuple[float, float, int]:
        options = dict(ways[way])
        inputs = options.pop("inputs")
        cpu, wall = tree_cpu_seconds(), time.perf_counter()
        stats = run("extract", spark, inputs, str(work / way), config, source="bench", overwrite=True, **options)
        return tree_cpu_seconds() - cpu, time.perf_counter() - wall, stats.in_rows

    once("local")  # warm-up: the JVM's executor and a Python worker with its imports
    once("remote")
    cpu: dict[str, list[float]] = {"local": [], "remote": []}
    wall: dict[str, list[float]] = {"local": [], "remote": []}
    for _ in range(repeats):
        for way in ("local", "remote"):
            seconds, elapsed, rows = once(way)
            cpu[way].append(seconds)
            wall[way].append(elapsed)
    spark.stop()
    if _parts(work / "local") != _parts(work / "remote"):
        raise RuntimeError("the remote run wrote other part files than the local run")
    print(f"extract of {rows} records: CPU-s local {[round(t, 2) for t in cpu['local']]}, "
          f"remote {[round(t, 2) for t in cpu['remote']]}; wall local {[round(t, 2) for t in wall['local']]}, "
          f"remote {[round(t, 2) for t in wall['remote']]}", file=sys.stderr)
    local, remote = statistics.median(cpu["local"]), statistics.median(cpu["remote"])
    return {"records": rows, "files": len(files), "repeats": repeats,
            "local_cpu_s": round(local, 2), "remote_cpu_s": round(remote, 2), "ratio": round(local / remote, 3),
            "local_wall_s": round(statistics.median(wall["local"]), 2),
            "remote_wall_s": round(statistics.median(wall["remote"]), 2)}


def big_warc_memory(server: S3Server, files: list[Path], work: Path, gigabytes: float) -> dict:
    """Peak RSS of a fresh process streaming a WARC of `gigabytes` GB from the server through the reader."""
    big = work / "big.warc.gz"
    target = int(gigabytes * 1e9)
    with open(big, "wb") as out:
        while out.tell() < target:
            for path in files:
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
    size = big.stat().st_size
    uri = f"s3://{BUCKET}/big/{big.name}"
    server.client().upload_file(str(big), BUCKET, f"big/{big.name}")
    big.unlink()
    records, retries, rss_kb, seconds = _stream(uri)
    _, _, small_rss_kb, _ = _stream(f"s3://{BUCKET}/crawl/{files[0].name}")  # the same process on a small file
    print(f"{size / 1e9:.2f} GB WARC from S3: {records} records in {float(seconds):.1f} s, peak RSS "
          f"{int(rss_kb) / 1024:.0f} MB ({int(small_rss_kb) / 1024:.0f} MB for {files[0].stat().st_size / 1e6:.1f} MB)",
          file=sys.stderr)
    return {"big_warc_bytes": size, "big_warc_records": int(records), "big_warc_retries": int(retries),
            "peak_rss_mb": round(int(rss_kb) / 1024, 1), "small_warc_peak_rss_mb": round(int(small_rss_kb) / 1024, 1),
            "big_warc_mb_per_s": round(size / 1e6 / float(seconds), 1)}


def _stream(uri: str) -> list[str]:
    """(records, retries, peak RSS in kB, seconds) of a fresh process reading `uri` through the reader."""
    answer = subprocess.run([sys.executable, "-c", _STREAM, uri], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    return answer.stdout.split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big-gb", type=float, default=1.0, help="size of the big WARC (0: skip)")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.records, args.files, args.repeats, args.big_gb = 60, 2, 1, 0.002  # a 2 MB "big" WARC

    from samplecrawl import build_sample_crawl

    work = Path(tempfile.mkdtemp(prefix="remote-read-bench-"))
    port = free_port()
    os.environ.update(aws_test_environment(port, work))  # before Spark's JVM starts: executors inherit it
    server = S3Server(port).start()
    try:
        build_sample_crawl(work / "crawl", args.records, args.files, args.seed)
        files = sorted((work / "crawl").glob("*.warc.gz"))
        figures = compare_extract(server, files, work, args.repeats)
        if args.big_gb > 0:
            figures.update(big_warc_memory(server, files, work, args.big_gb))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
