"""Cleanup stage throughput: the stage at local[1] against a bare loop of the same heuristics, per CPU-second.

Documents: the quality bench's real texts from ../shared/data (prose cut into documents of about 1,000
characters, and the visible text of real crawled pages), alternating, repeated under distinct doc_ids
up to --documents (4,000), written as an `ingest` stage folder of 8 Parquet files: so ftfy runs on every
document (only extract's output skips it), langdetect identifies its language, and the paper's
heuristics (non_english, javascript_notice, too_short) keep or drop it.

Both sides do the same per-document work on one core: read the Parquet, ftfy, langdetect (seeded),
decide, write the kept rows bucketed by doc_id and sorted, and the dropped rows' index
(_bare_write.py). The stage adds Spark, the Arrow transfer to its Python worker, the tallies and
stats.json. After one untimed warm-up run of the stage, loop and stage runs alternate, --repeats (5) of
each (_alternate.py); `ratio` is the median over pairs of the stage's documents per CPU-second (driver,
JVM and Python worker together) over the loop's, with its spread. The last line printed is one JSON
object of the figures.

    .venv/bin/python bench/cleanup_throughput.py [--documents 4000] [--repeats 5] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from _alternate import DEFAULT_REPEATS, SMOKE_REPEATS, alternate
from _bare_write import write_bucketed
from _shared import data_folder
from quality_throughput import page_documents, prose_documents, write_stage_folder

from blending.spark_session import get_spark
from dataprep.cleanup.heuristics import fix_text, heuristic_reason
from dataprep.config import DataprepConfig
from dataprep.pipeline import run
from dataprep.text.language import detect_language, seed_langdetect

README_FIGURES = ("ratio", "ratio_min", "ratio_max", "stage_docs_per_cpu_s")


def bare_loop(folder: Path, out: Path, config: DataprepConfig) -> dict[str, int]:
    """ftfy, langdetect and the heuristics over the folder's documents, the stage's output written; the
    documents dropped by reason."""
    seed_langdetect(config.cleanup.langdetect_seed)
    table = pq.read_table(sorted(folder.glob("part-*.parquet")))
    texts = [fix_text(t or "") for t in table.column("text").to_pylist()]
    reasons = [heuristic_reason(t, detect_language(t), config.cleanup) for t in texts]
    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
    write_bucketed(table.append_column("drop_reason", pa.array(reasons, pa.string())), out, config.output)
    dropped: dict[str, int] = {}
    for reason in reasons:
        if reason is not None:
            dropped[reason] = dropped.get(reason, 0) + 1
    return dropped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.documents, args.repeats = 100, SMOKE_REPEATS

    work = Path(tempfile.mkdtemp(prefix="cleanup_bench-"))
    try:
        data = data_folder(args.smoke)
        prose, pages = prose_documents(data), page_documents(data)
        texts = [t for pair in zip(prose, pages * (len(prose) // len(pages) + 1)) for t in pair]
        chars = write_stage_folder(work / "docs", texts, args.documents)
        print(f"documents: {args.documents:,} ({chars / 1e6:.1f} M characters)", file=sys.stderr)

        config = DataprepConfig()
        config.output.num_buckets = 8
        quiet = {"log": lambda *_: None}
        started = time.perf_counter()
        spark = get_spark("local[1]", app_name="cleanup_throughput", conf={"spark.ui.showConsoleProgress": "false"})
        run("cleanup", spark, [str(work / "docs")], str(work / "warmup"), config, **quiet)
        session_s = time.perf_counter() - started

        def check(dropped, stats):
            stage_dropped = {reason: n for reason, n in stats.dropped.items() if n}
            assert dropped == stage_dropped, (dropped, stage_dropped)

        runs = alternate(lambda: bare_loop(work / "docs", work / "bare", config),
                         lambda: run("cleanup", spark, [str(work / "docs")], str(work / "cleanup"), config,
                                     overwrite=True, **quiet),
                         args.repeats, check)
        stats = runs.stage_results[-1]
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(json.dumps({
        **runs.figures(args.documents),
        "documents": args.documents,
        "megacharacters": round(chars / 1e6, 2),
        "kept": stats.kept_rows,
        "dropped": stats.dropped,
        "master": "local[1]",
        "spark_start_and_warmup_s": round(session_s, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
