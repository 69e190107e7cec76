"""Quality stage throughput (local[1] against a bare pyarrow + model.predict loop) and the default classifier's accuracy.

Also the classifier's size and training time.

Documents: real text from ../shared/data cut into documents of about 1,000 characters at paragraph or
line boundaries: prose (Gutenberg books, WikiText-2, Shakespeare, the NLTK speeches) and the visible
text of real crawled pages (the article-extraction benchmark's and trafilatura's evaluation pages), so
that both the kept and the dropped side of the Pareto filter are exercised; repeated under distinct
doc_ids up to --documents (50,000). They are written as a stage folder of 8 Parquet files.

Both sides use the default classifier (trained first, from the shipped texts: that gives its
cross-validated accuracy, ROC AUC and accuracy on the held-out set, model size and training time) and
do the same per-document work on one core: read the Parquet, normalise and score the texts with `model.predict` in batches,
draw the Pareto numbers, decide, write the kept rows bucketed by doc_id and sorted, and the dropped
rows' index (_bare_write.py). The stage adds what a stage is: Spark, the Arrow transfer to its Python
worker, the tallies, stats.json. After one untimed warm-up run of the stage, loop and stage runs
alternate, --repeats (5) of each (_alternate.py). Throughput is in documents per CPU second (the
stage's: driver, JVM and Python worker together), so a loaded machine does not skew it; `ratio` is the
median over pairs of the stage's documents per CPU second over the loop's, with its spread.

    .venv/bin/python bench/quality_throughput.py [--documents 50000] [--repeats 5] [--smoke]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _alternate import DEFAULT_REPEATS, SMOKE_REPEATS, alternate  # noqa: E402
from _bare_write import write_bucketed  # noqa: E402
from _shared import data_folder  # noqa: E402

from blending.spark_session import get_spark  # noqa: E402
from dataprep.config import ClassifierConfig, DataprepConfig  # noqa: E402
from dataprep.pipeline import run  # noqa: E402
from dataprep.quality.corpus import default_paths  # noqa: E402
from dataprep.quality.model import check_model, score_texts  # noqa: E402
from dataprep.quality.pareto import DROP_REASON, keeps, pareto_draw  # noqa: E402
from dataprep.quality.source_texts import decode_text, visible_lines  # noqa: E402
from dataprep.quality.train import MODEL_FILE, summary, train_classifier  # noqa: E402
from dataprep.schema import DOCUMENT_SCHEMA, bucket_of, doc_id  # noqa: E402
from dataprep.text.charset import decode_html  # noqa: E402

README_FIGURES = ("ratio", "ratio_min", "ratio_max", "stage_docs_per_cpu_s", "roc_auc", "heldout_accuracy", "cv_accuracy",
                  "length_baseline_accuracy", "model_mb")  # the figures bench/_results.py puts in the README table
DOCUMENT_CHARS = 1000
BATCH = 1024


def chunks(pieces: list[str], size: int = DOCUMENT_CHARS) -> list[str]:
    """Consecutive pieces joined (by blank lines) into documents of at least `size` characters."""
    out, current = [], []
    for piece in pieces:
        current.append(piece)
        if sum(len(p) for p in current) >= size:
            out.append("\n\n".join(current))
            current = []
    return out


def prose_documents(data: Path) -> list[str]:
    texts = [decode_text(p.read_bytes()) for p in sorted((data / "prose").glob("*/*.txt"))]
    for archive in sorted((data / "prose" / "nltk_data").glob("*.zip")):
        with zipfile.ZipFile(archive) as z:
            texts += [decode_text(z.read(n)) for n in sorted(z.namelist()) if n.endswith(".txt")]
    documents = []
    for text in texts:
        paragraphs = [" ".join(p.split()) for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
        documents += chunks(paragraphs)
    return documents


def page_documents(data: Path) -> list[str]:
    pages = [gzip.decompress(p.read_bytes()) for p in sorted((data / "html" / "aeb_html").glob("*.html.gz"))]
    pages += [p.read_bytes() for p in sorted((data / "html" / "trafilatura_eval").glob("*.html"))]
    documents = []
    for payload in pages:
        decoded = decode_html(payload, None)
        if decoded is not None:
            documents += chunks(visible_lines(decoded.text))
    return documents


def write_stage_folder(folder: Path, texts: list[str], count: int, buckets: int = 8) -> int:
    rows = []
    for i in range(count):
        origin = f"bench.jsonl:{i}"
        rows.append({"doc_id": doc_id("bench", origin), "source": "bench", "url": None, "origin": origin,
                     "lang": "en", "lang_score": 1.0, "text": texts[i % len(texts)]})
    folder.mkdir(parents=True)
    for b in range(buckets):
        part = sorted((r for r in rows if bucket_of(r["doc_id"], buckets) == b), key=lambda r: r["doc_id"])
        pq.write_table(pa.Table.from_pylist(part, schema=DOCUMENT_SCHEMA), folder / f"part-{b:05d}.parquet")
    (folder / "_SUCCESS").write_text(json.dumps({"stage": "ingest", "code_version": "bench", "config_hash": "bench"}))
    (folder / "stats.json").write_text(json.dumps({"out": {"rows": count}}))
    return sum(len(r["text"]) for r in rows)


def bare_loop(folder: Path, model_path: Path, out: Path, config: DataprepConfig) -> int:
    """Read the Parquet, score in batches, draw, decide, write the stage's output. Returns the documents dropped."""
    model = check_model(model_path)
    seed, alpha = config.quality.pareto_seed, config.quality.pareto_alpha
    table = pq.read_table(sorted(folder.glob("part-*.parquet")))
    scores, draws = [], []
    for batch in table.to_batches(BATCH):
        scores += score_texts(model, batch.column("text").to_pylist())
        draws += [pareto_draw(i, seed, alpha) for i in batch.column("doc_id").to_pylist()]
    reasons = [None if keeps(s, d) else DROP_REASON for s, d in zip(scores, draws)]
    table = table.append_column("quality_score", pa.array(scores, pa.float64()))
    table = table.append_column("pareto_draw", pa.array(draws, pa.float64()))
    write_bucketed(table.append_column("drop_reason", pa.array(reasons, pa.string())), out, config.output)
    return sum(r is not None for r in reasons)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.documents, args.repeats = 300, SMOKE_REPEATS
    os.environ["OMP_NUM_THREADS"] = "1"

    work = Path(tempfile.mkdtemp(prefix="quality_bench-"))
    try:
        started = time.perf_counter()
        metrics = train_classifier(work / "classifier", *default_paths(), ClassifierConfig())
        print(summary(metrics))
        print(f"(training with cross-validation: {time.perf_counter() - started:.1f} s)")
        model = work / "classifier" / MODEL_FILE

        data = data_folder(args.smoke)
        prose, pages = prose_documents(data), page_documents(data)
        texts = [t for pair in zip(prose, pages * (len(prose) // len(pages) + 1)) for t in pair]
        chars = write_stage_folder(work / "docs", texts, args.documents)
        print(f"documents: {args.documents:,} ({len(prose):,} prose and {len(pages):,} page-text documents, "
              f"repeated; {chars / 1e6:.1f} M characters)")

        config = DataprepConfig()
        config.output.num_buckets = 8
        quiet = {"log": lambda *_: None}
        started = time.perf_counter()
        spark = get_spark("local[1]", app_name="quality_throughput")
        run("quality", spark, [str(work / "docs")], str(work / "warmup"), config, model=str(model), **quiet)
        session_s = time.perf_counter() - started

        def check(dropped, stats):
            assert dropped == stats.dropped[DROP_REASON], (dropped, stats.dropped)

        runs = alternate(lambda: bare_loop(work / "docs", model, work / "bare", config),
                         lambda: run("quality", spark, [str(work / "docs")], str(work / "quality"), config,
                                     model=str(model), overwrite=True, **quiet),
                         args.repeats, check)
        removed = runs.stage_results[-1].extra["removed_fraction"]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.documents
    figures = runs.figures(n)
    print(f"stage (Spark local[1]): {figures['stage_docs_per_cpu_s']:,.0f} documents per CPU second; "
          f"bare loop: {figures['loop_docs_per_cpu_s']:,.0f}")
    print(json.dumps({
        **figures,
        "documents": n,
        "removed_fraction_documents": round(removed["documents"], 4),
        "removed_fraction_characters": round(removed["characters"], 4),
        "roc_auc": round(metrics["heldout_set"]["roc_auc"], 4),  # on the held-out set (dataprep/quality/heldout.py)
        "heldout_accuracy": round(metrics["heldout_set"]["accuracy"], 4),
        "heldout_accuracy_at_pareto_threshold": round(metrics["heldout_set"]["accuracy_at_pareto_threshold"], 4),
        "split_heldout_accuracy": round(metrics["heldout"]["accuracy"], 4),  # the 10% of training groups left out
        "cv_accuracy": round(metrics["cv"]["accuracy_mean"], 4),
        "cv_accuracy_std": round(metrics["cv"]["accuracy_std"], 4),
        "length_baseline_accuracy": round(metrics["cv"]["length_baseline"]["accuracy_mean"], 4),
        "model_mb": round(metrics["model"]["bytes"] / 1e6, 2),
        "training_s": metrics["training_seconds"]["model"],
        "training_with_cv_s": metrics["training_seconds"]["total"],
        "master": "local[1]",
        "spark_start_and_warmup_s": round(session_s, 1),
    }))


if __name__ == "__main__":
    main()
