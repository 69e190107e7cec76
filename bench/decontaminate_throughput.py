"""Decontamination throughput: the stage at local[1] against a bare loop of the same matcher.

Documents are real prose from ../shared/data (Wikipedia articles of wikitext-2, three Project Gutenberg
books, Shakespeare, US inaugural and State of the Union speeches, the article bodies of 181 news/blog
pages, CCNet Common Crawl documents), cut into documents of consecutive paragraphs; the corpus is
repeated with other paragraph groupings up to `--documents`. A deterministic 5% of the documents get one
real task text (LAMBADA passages, BoolQ passages, HellaSwag contexts, PIQA goals with a solution, ANLI
premises, RACE articles) inserted between two paragraphs, and 0.5% get twelve, so that cutting,
splitting and dropping are part of the work.

In one run, alternating, `--repeats` (5) times each (_alternate.py):
  - stage:     `dataprep decontaminate` on a one-core Spark (local[1]): index build, the frequent
               n-gram aggregation, matching and cutting, the bucketed write
  - bare loop: the same index build, pyarrow reads the same Parquet files, the same two passes
               (frequent n-grams, then rows.decontaminate_batch), pyarrow writes the rows as the
               stage does (bucketed by doc_id, sorted, the dropped rows' index)
CPU seconds count, for the stage, this process and its descendants (Spark's JVM and Python workers).
ratio = the median over pairs of the stage's documents per CPU-second over the loop's, with its spread
(goal >= 0.9). Also: the index of all shipped
tasks (size, build time), and what the matcher finds in the corpus before anything is inserted.
The last line printed is one JSON object of the figures.

    python bench/decontaminate_throughput.py [--documents 6000] [--repeats 5] [--smoke]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from _alternate import DEFAULT_REPEATS, SMOKE_REPEATS, alternate
from _bare_write import write_bucketed
from _shared import data_folder

from blending.evaltasks import load_task
from dataprep.config import DataprepConfig
from dataprep.decontaminate.index import build_from_sources, describe, parse_task_args
from dataprep.decontaminate.matcher import Matcher
from dataprep.decontaminate.rows import decontaminate_batch, distinct_keys, output_schema
from dataprep.framework.tally import Tally
from dataprep.schema import IN_ROWS

README_FIGURES = ("ratio", "ratio_min", "ratio_max", "stage_docs_per_cpu_s", "loop_docs_per_cpu_s", "index_bytes", "index_build_cpu_s")


# -- the corpus ----------------------------------------------------------------------------------------------


def _paragraphs(text: str) -> list[str]:
    text = text.replace("\r\n", "\n")
    return [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) > 40]


def real_sources(shared: Path) -> dict[str, list[str]]:
    """name -> paragraphs, in reading order."""
    sources: dict[str, list[str]] = {}
    for name in ("valid", "test"):
        text = (shared / "prose" / "wikitext-2" / f"{name}.txt").read_text()
        sources[f"wikitext-{name}"] = [p for p in _paragraphs(text) if not p.startswith("=")]
    for path in sorted((shared / "prose" / "gutenberg").glob("*.txt")):
        sources[path.stem] = _paragraphs(path.read_bytes().decode("utf-8", errors="replace"))
    sources["shakespeare"] = _paragraphs((shared / "prose" / "tinyshakespeare" / "input.txt").read_text())
    for archive in sorted((shared / "prose" / "nltk_data").glob("*.zip")):  # inaugural, state_union
        with zipfile.ZipFile(archive) as z:
            for member in sorted(z.namelist()):
                if member.endswith(".txt"):
                    sources[f"{archive.stem}/{Path(member).stem}"] = _paragraphs(z.read(member).decode("latin-1"))
    truth = json.loads((shared / "html" / "aeb_ground-truth.json").read_text())
    sources["news"] = [p for key in sorted(truth) for p in _paragraphs(truth[key]["articleBody"].replace("\n", "\n\n"))]
    for path in sorted((shared / "warc").glob("dolma_cc_en_head-*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            sources[path.name] = [p for line in f for p in _paragraphs(json.loads(line)["text"].replace("\n", "\n\n"))]
    return sources


def real_documents(shared: Path, count: int) -> list[str]:
    """`count` documents of consecutive paragraphs (about 1-6 kB each); each round over the material
    groups paragraphs differently."""
    sources = real_sources(shared)
    documents: list[str] = []
    round_ = 0
    while len(documents) < count:
        rng = random.Random(round_)
        for name in sorted(sources):
            paragraphs, i = sources[name], rng.randrange(3)
            while i < len(paragraphs) and len(documents) < count:
                target, chunk = rng.randint(1000, 6000), []
                while i < len(paragraphs) and sum(map(len, chunk)) < target:
                    chunk.append(paragraphs[i])
                    i += 1
                documents.append("\n\n".join(chunk))
        round_ += 1
    return documents


def task_texts() -> list[str]:
    texts = [i.texts[0] for i in load_task("lambada")]
    texts += [i.texts[0] for i in load_task("boolq")]
    texts += [i.texts[0] + " " + i.texts[1 + i.gold] for i in load_task("hellaswag")]
    texts += [i.texts[0] + " " + i.texts[1 + i.gold] for i in load_task("piqa")]
    texts += [i.texts[0] for i in load_task("anli_r1") + load_task("anli_r2") + load_task("anli_r3")]
    texts += sorted({i.texts[0] for i in load_task("race") if i.split != "train"})
    return texts


def inject(documents: list[str], texts: list[str], seed: int = 0) -> tuple[list[str], int]:
    """5% of the documents get one task text between two paragraphs, 0.5% get twelve."""
    rng = random.Random(seed)
    out, injected = [], 0
    for document in documents:
        draw = rng.random()
        leaks = 12 if draw < 0.005 else 1 if draw < 0.055 else 0
        if leaks:
            paragraphs = document.split("\n\n")
            for _ in range(leaks):
                paragraphs.insert(rng.randrange(len(paragraphs) + 1), rng.choice(texts))
            document = "\n\n".join(paragraphs)
            injected += leaks
        out.append(document)
    return out, injected


def write_stage_folder(spark, documents: list[str], folder: Path) -> None:
    """The documents as an `ingest` stage folder (one JSONL line each)."""
    from dataprep.pipeline import run

    folder.mkdir(parents=True)
    with open(folder / "bench.jsonl", "w") as f:
        f.writelines(json.dumps({"text": text}) + "\n" for text in documents)
    config = DataprepConfig()
    config.output.num_buckets = 8
    run("ingest", spark, [str(folder / "bench.jsonl")], str(folder / "in"), config, source="bench", format="jsonl",
        log=lambda *_: None)


# -- the two ways -------------------------------------------------------------------------------------------


def bare_loop(folder: Path, out: Path, config: DataprepConfig) -> dict:
    """The stage's work without Spark: build the index, count frequent n-grams, decontaminate, write the
    stage's output (_bare_write.py)."""
    c = config.decontamination
    index = build_from_sources(parse_task_args(None), c.ngram, c.min_task_words)
    out.mkdir(parents=True, exist_ok=True)
    index.save(out / "task_index.npz")
    parts = sorted(folder.glob("part-*.parquet"))
    matcher = Matcher(index)
    documents_with = Counter()
    for part in parts:
        for batch in pq.read_table(part).to_batches():
            lengths, keys = distinct_keys(batch.column("text").to_pylist(), matcher)
            documents_with.update(zip(lengths, keys))
    exempt = [(length, key % (1 << 64)) for (length, key), n in documents_with.items() if n >= c.frequent_ngram_count]
    matcher = Matcher(index, exempt)
    tally = Tally()
    rows, batches = 0, []
    for part in parts:
        table = pq.read_table(part)
        schema = output_schema(table.schema)
        batches += [decontaminate_batch(b, matcher, schema, tally, c.cut_chars, c.min_piece_chars, c.max_splits)
                    for b in table.to_batches()]
        rows += table.num_rows
    write_bucketed(pa.Table.from_batches(batches).drop_columns([IN_ROWS]), out, config.output)
    return {"rows": rows, "tally": tally, "exempt": len(exempt)}


def spark_stage(spark, folder: Path, out: Path):
    from dataprep.pipeline import run

    return run("decontaminate", spark, [str(folder)], str(out), overwrite=True, log=lambda *_: None)


def natural_matches(documents: list[str]) -> dict:
    """What the matcher finds in the corpus before anything is inserted (all shipped tasks)."""
    index = build_from_sources(parse_task_args(None))
    matcher = Matcher(index)
    tasks, touched, examples = Counter(), 0, []
    for text in documents:
        matches = matcher.matches(text)
        if matches:
            touched += 1
            for item_id in matcher.item_ids(matches).tolist():
                tasks[index.item(item_id)[0]] += 1
            if len(examples) < 5:
                from dataprep.decontaminate.tokens import word_spans

                spans = word_spans(text)
                m = matches[0]
                examples.append(text[spans[m.position][0] : spans[m.position + m.length - 1][1]])
    return {"documents_with_a_match": touched, "items_by_task": dict(tasks), "examples": examples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--shared", type=Path, help="the shared data folder (default: bench/_shared.py's)")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.documents, args.repeats = 200, SMOKE_REPEATS

    # the index of every shipped task: size and build time
    started, cpu = time.perf_counter(), time.process_time()
    index = build_from_sources(parse_task_args(None))
    build_wall, build_cpu = time.perf_counter() - started, time.process_time() - cpu
    work = Path(tempfile.mkdtemp(prefix="decontaminate-bench-"))
    index_bytes = index.save(work / "index.npz")
    print(describe(index, index_bytes), file=sys.stderr)

    natural = real_documents(args.shared or data_folder(args.smoke), args.documents)
    found = natural_matches(natural)
    print(f"before insertion: {found}", file=sys.stderr)
    documents, injected = inject(natural, task_texts())
    megabytes = sum(len(t.encode()) for t in documents) / 1e6
    print(f"{len(documents):,} documents, {megabytes:.1f} MB, {injected} task texts inserted", file=sys.stderr)

    from blending.spark_session import get_spark

    spark = get_spark("local[1]", app_name="bench-decontaminate", conf={"spark.ui.showConsoleProgress": "false"})
    try:
        write_stage_folder(spark, documents, work / "ingest")
        folder = work / "ingest" / "in"
        spark_stage(spark, folder, work / "warmup")  # JVM, Python worker and imports warm, as on a cluster

        def check(loop, stats):
            if stats.in_rows != loop["rows"] or stats.extra["exempt_ngrams"] != loop["exempt"]:
                raise RuntimeError(f"the stage read {stats.in_rows} rows, the loop {loop['rows']}")

        runs = alternate(lambda: bare_loop(folder, work / "loop", DataprepConfig()),
                         lambda: spark_stage(spark, folder, work / "stage"), args.repeats, check)
        stats = runs.stage_results[-1]
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(stats.extra["documents"]), json.dumps(stats.dropped), file=sys.stderr)

    rows = len(documents)
    figures = {
        **runs.figures(rows),
        "documents": rows,
        "megabytes": round(megabytes, 1),
        "task_texts_inserted": injected,
        "stage_documents": stats.extra["documents"],
        "pieces_kept": stats.extra["pieces_kept"],
        "characters_removed": stats.extra["characters_removed"],
        "natural_documents_with_a_match": found["documents_with_a_match"],
        "index_bytes": index_bytes,
        "index_build_s": round(build_wall, 2),
        "index_build_cpu_s": round(build_cpu, 2),
        "index_ngrams": index.num_keys(),
        "index_13grams_per_task": {name: c["ngrams"] for name, c in index.counts.items()},
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
