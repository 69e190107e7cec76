"""Shard builder throughput: Spark (local[1]) against a bare loop of the same passes writing the same shards.

Corpus: every prose file under ../shared/data/prose (Gutenberg books, Shakespeare, wikitext-2, the
NLTK inaugural and State of the Union speeches), split into paragraphs, one document each, repeated
--copies (4) times under distinct doc_ids to give the tokenizer enough work (about 8M tokens). The
documents are a folder of the curation pipeline's last stage, as the builder reads it. The bare loop
calls the builder's per-document functions (blending/passes.py) in one process: read and tokenize the
part files, plan, write each shard with its document index; its `.bin`, `.idx` and `.docs.parquet`
files are checked equal, byte for byte, to the builder's after every pair. Both sides tokenize
single-threaded with the same tokenizer. The Spark session is started once before timing, and one
untimed build warms it up (reported on their own). Loop and builder runs alternate, --repeats (5) of
each (_alternate.py); `ratio` is the median over pairs of the builder's tokens per CPU-second (driver,
JVM and Python workers together) over the loop's (its own process), with its spread; `wall_ratio` the
same reading of wall times. Also, after the pairs: `encode_only_cpu_s`, the median CPU time of a leaner
loop that only encodes the sorted texts into one Megatron dataset (no validation split, no document
index), as a floor for the tokenizing work, and the time to train the byte-level BPE on one copy of the
corpus.

    .venv/bin/python bench/shard_throughput.py [--copies 4] [--repeats 5] [--vocab-size 8192] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _alternate import DEFAULT_REPEATS, SMOKE_REPEATS, alternate  # noqa: E402
from _shared import data_folder  # noqa: E402

from blending.build import RUNS, build  # noqa: E402
from blending.config import BlendConfig  # noqa: E402
from blending.indexed import IndexedDatasetWriter  # noqa: E402
from blending.passes import PartSlice, plan, read_meta, tokenize_parts, write_shard  # noqa: E402
from blending.spark_session import get_spark  # noqa: E402
from blending.stage_folder import FINAL_STAGE, list_parts  # noqa: E402
from blending.tokenizer import (  # noqa: E402
    encode_documents,
    eod_id,
    load_tokenizer,
    single_threaded,
    token_dtype,
    train_bpe,
    vocab_size,
)
from dataprep.schema import DOCUMENT_SCHEMA, bucket_of, doc_id  # noqa: E402

CHUNK = 1024

README_FIGURES = ("ratio", "ratio_min", "ratio_max")  # the figures bench/_results.py puts in the README table


def read_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("iso-8859-1")  # the Sherlock Holmes file


def prose_files(prose: Path) -> list[tuple[str, str]]:
    files = []
    for path in sorted(prose.rglob("*")):
        if path.suffix == ".txt":
            files.append((path.name, read_text(path.read_bytes())))
        elif path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                for name in sorted(z.namelist()):
                    if name.endswith(".txt"):
                        files.append((f"{path.stem}/{Path(name).name}", read_text(z.read(name))))
    return files


def corpus_rows(prose: Path, copies: int) -> list[dict]:
    rows = []
    for copy in range(copies):
        for name, text in prose_files(prose):
            paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
            for i, paragraph in enumerate(paragraphs):
                origin = f"{name}:{i}:copy{copy}"
                rows.append({"doc_id": doc_id("prose", origin), "source": "prose", "url": None, "origin": origin,
                             "lang": "en", "lang_score": 1.0, "text": paragraph})
    return rows


def write_stage_folder(folder: Path, rows: list[dict], buckets: int = 8) -> None:
    """The documents as the pipeline's last stage writes them: bucketed part files sorted by doc_id, stats, _SUCCESS."""
    folder.mkdir(parents=True)
    for b in range(buckets):
        part = sorted((r for r in rows if bucket_of(r["doc_id"], buckets) == b), key=lambda r: r["doc_id"])
        pq.write_table(pa.Table.from_pylist(part, schema=DOCUMENT_SCHEMA), folder / f"part-{b:05d}.parquet")
    (folder / "stats.json").write_text(json.dumps({"stage": FINAL_STAGE, "in": {"rows": len(rows)},
                                                   "out": {"rows": len(rows)}}))
    (folder / "_SUCCESS").write_text(json.dumps({"stage": FINAL_STAGE}))


def encode_only(folder: Path, tokenizer_path: Path, out: Path) -> int:
    """The leanest loop: read the documents, encode_batch in chunks, write one Megatron dataset. Returns tokens."""
    tokenizer = load_tokenizer(tokenizer_path)
    eod, dtype = eod_id(tokenizer), token_dtype(vocab_size(tokenizer))
    table = pq.read_table(sorted(folder.glob("part-*.parquet")), columns=["doc_id", "text"])
    texts = table.take(pc.sort_indices(table, [("doc_id", "ascending")]))["text"].to_pylist()
    writer = IndexedDatasetWriter(out / "encoded", dtype)
    for start in range(0, len(texts), CHUNK):
        writer.add_documents(*encode_documents(tokenizer, texts[start:start + CHUNK], eod, dtype))
    return writer.close().tokens


def bare_loop(config: BlendConfig, out: Path) -> int:
    """The builder's passes in one process, without Spark: the same shards (and document indexes). Returns tokens."""
    tokenizer = load_tokenizer(config.tokenizer.file)
    eod, dtype = eod_id(tokenizer), token_dtype(vocab_size(tokenizer))
    source = config.sources[0]
    parts = [PartSlice(part, source.inputs[0], (source.source_value,)) for part in list_parts(source.inputs[0])]
    (out / RUNS).mkdir(parents=True)
    run = tokenize_parts(parts, out / RUNS, tokenizer, eod, dtype, {source.source_value: 0}, config.valid_fraction,
                         config.text_column)
    meta = read_meta([run])
    (out / source.name).mkdir()
    tokens = 0
    for shard in plan(meta.filter(pc.is_null(meta["drop"])), [source.name], config.shard_size_tokens):
        tokens += write_shard(shard, out, out / RUNS, dtype).tokens
    shutil.rmtree(out / RUNS)
    return tokens


def shard_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.name.endswith((".bin", ".idx", ".docs.parquet"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--max-documents", type=int, help="only the first N paragraphs of the corpus")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.copies, args.max_documents, args.repeats, args.vocab_size = 1, 2000, SMOKE_REPEATS, 512
    single_threaded()  # one core per side: a Spark task at local[1] against one loop

    work = Path(tempfile.mkdtemp(prefix="shard_bench-"))
    try:
        rows = corpus_rows(data_folder(args.smoke) / "prose", args.copies)[:args.max_documents]
        corpus_bytes = sum(len(r["text"].encode()) for r in rows)
        write_stage_folder(work / "docs", rows)
        one_copy = [r["text"] for r in rows if r["origin"].endswith(":copy0")]
        tokenizer = train_bpe(one_copy, args.vocab_size)
        tokenizer.save(str(work / "tokenizer.json"))
        print(f"corpus: {len(rows):,} documents, {corpus_bytes / 1e6:.1f} MB ({args.copies} copies of the prose files)")

        def config(docs: Path) -> BlendConfig:
            return BlendConfig.from_dict({
                "tokenizer": {"file": str(work / "tokenizer.json")},
                "sources": [{"name": "prose", "inputs": [str(docs)], "weight": 1.0}],
                "shard_size_tokens": 2_000_000,
            })

        # a service starts its session and Python workers once, and its JVM code is compiled after the
        # first build: one untimed build first
        started = time.perf_counter()
        get_spark("local[1]", app_name="shard_throughput")
        shutil.rmtree(build(config(work / "docs"), work / "warmup", master="local[1]", log=lambda *_: None).parent)
        session_s = time.perf_counter() - started

        def builder() -> int:
            shutil.rmtree(work / "shards", ignore_errors=True)
            manifest = build(config(work / "docs"), work / "shards", master="local[1]", log=lambda *_: None)
            return sum(s["tokens"] for src in json.loads(manifest.read_text())["sources"].values()
                       for split in ("train", "valid") for s in src[split])

        def bare() -> int:
            shutil.rmtree(work / "bare", ignore_errors=True)
            return bare_loop(config(work / "docs"), work / "bare")

        def check(bare_tokens: int, tokens: int) -> None:
            assert bare_tokens == tokens, (bare_tokens, tokens)
            assert shard_files(work / "bare") == shard_files(work / "shards"), "the loop wrote other shards"

        runs = alternate(bare, builder, args.repeats, check)
        tokens = runs.stage_results[-1]

        encode_s = []
        for _ in range(args.repeats):
            shutil.rmtree(work / "encoded", ignore_errors=True)
            (work / "encoded").mkdir()
            cpu = time.process_time()
            assert encode_only(work / "docs", work / "tokenizer.json", work / "encoded") == tokens
            encode_s.append(time.process_time() - cpu)

        train_s = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            train_bpe(one_copy, args.vocab_size)
            train_s.append(time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    figures = runs.figures(tokens, unit="tokens")
    print(f"builder (Spark local[1]): {figures['stage_tokens_per_cpu_s']:,.0f} tokens per CPU-s; "
          f"the same passes in a bare loop: {figures['loop_tokens_per_cpu_s']:,.0f}; "
          f"encoding alone: {tokens / statistics.median(encode_s):,.0f}")
    print(f"tokenizer training: {statistics.median(train_s):.1f} s for a {args.vocab_size}-token BPE on "
          f"{sum(len(t.encode()) for t in one_copy) / 1e6:.1f} MB ({len(one_copy):,} documents)")
    print(json.dumps({
        **figures,
        "wall_ratio": round(statistics.median(runs.loop_wall) / statistics.median(runs.stage_wall), 3),
        "encode_only_cpu_s": round(statistics.median(encode_s), 2),
        "tokens": tokens,
        "documents": len(rows),
        "corpus_mb": round(corpus_bytes / 1e6, 1),
        "master": "local[1]",
        "spark_start_and_warmup_s": round(session_s, 1),
        "tokenizer_train_s": round(statistics.median(train_s), 2),
        "tokenizer_train_corpus_mb": round(sum(len(t.encode()) for t in one_copy) / 1e6, 1),
        "tokenizer_vocab_size": args.vocab_size,
    }))


if __name__ == "__main__":
    main()
