"""The shard builder: documents of every source -> tokenized Megatron shards + manifest.json.

Spark runs the passes of blending/passes.py:
  1. tokenize, one task per part file (or per slice of its row groups, with --partitions): the task reads
     the file itself, runs `encode_batch` on chunks of documents (EOD appended; the validation split drawn
     from a stable hash of doc_id), streams the tokens into a run file of its own and writes one small
     metadata row per document (source, split, doc_id, token count, run, offset) beside it;
  2. plan, on the driver: each source split ordered by doc_id and cut into shards of at most
     `shard_size_tokens` tokens (memory: the metadata, some 50 bytes per document);
  3. write, one Spark task per shard: its documents copied from the runs in doc_id order into `.bin`,
     then `.idx` (memory: a copy buffer of COPY_BUFFER_TOKENS), and the document index beside them.
Texts and tokens never pass through the JVM, a shuffle or the driver. A shard's bytes depend only on its
documents in doc_id order, never on the Spark master or the partitioning. Runs and shards are written
under OUT.tmp-*, so OUT must be on a filesystem the executors share with the driver (local disk in local
mode; NFS/Lustre on a cluster, where Megatron reads the shards anyway). OUT.tmp-* is renamed to OUT once
manifest.json, stats.json and _SUCCESS (last) are in it; the runs are deleted first. An OUT on object
storage (s3://...) is built the same way in a local temporary folder (under $TMPDIR, which the executors
must share), then uploaded as a listed folder (blending/stage_folder.py): its _SUCCESS, written last, lists
the manifest, tokenizer and shards. `python -m blending fetch` brings it back to local disk for training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import SparkSession
from tokenizers import Tokenizer

from blending import __version__
from blending.atomic import write_text_atomic
from blending.config import BlendConfig, SourceConfig, TokenizerConfig
from blending.documents import DROP_REASONS, check_curated, documents_folder, iter_texts
from blending.manifest import MANIFEST_FILE, SPLITS, manifest_dict, write_manifest
from blending.passes import PartSlice, PlannedShard, TokenizedRun, plan, read_meta, tokenize_parts, write_shard
from blending.spark_parts import read_schema
from blending.spark_session import get_spark
from blending.stage_folder import (
    FINAL_STAGE,
    SUCCESS,
    InputError,
    exists,
    folder_record,
    is_listed,
    list_parts,
    remove_unlisted,
    reusable,
    swap_into_place,
    temporary_folder,
    upload_folder,
)
from blending.stage_folder import success_record as folder_success_record
from blending.stage_stats import StageStats
from blending.tokenizer import (
    TOKENIZER_FILE,
    TokenizerError,
    eod_id,
    from_gpt2_files,
    load_tokenizer,
    prepare,
    single_threaded,
    token_dtype,
    train_bpe,
    vocab_size,
)

STAGE = "blend"
STATS_FILE = "stats.json"
RUNS = "_runs"


@dataclass(frozen=True)
class ResolvedTokenizer:
    json_bytes: bytes  # written as OUT/tokenizer.json
    sha256: str
    vocab_size: int
    eod_id: int

    @property
    def dtype(self) -> np.dtype:
        return token_dtype(self.vocab_size)


def resolve_tokenizer(config: BlendConfig, log=print, sources: list[SourceConfig] | None = None) -> ResolvedTokenizer:
    """The configured tokenizer; a missing `file` with `train_vocab_size` is trained first on the training
    documents (never the validation ones) of `sources` (default: all configured) and saved there."""
    tc: TokenizerConfig = config.tokenizer
    if tc.file is not None:
        path = Path(tc.file)
        if not path.is_file() and tc.train_vocab_size:
            log(f"training a {tc.train_vocab_size}-token byte-level BPE on the blend's training documents -> {path}")
            seen = [0]

            def texts():
                for source in config.sources if sources is None else sources:
                    for text in iter_texts(source.inputs, source.source_value, config.text_column, config.valid_fraction):
                        seen[0] += 1
                        yield text

            tokenizer = train_bpe(texts(), tc.train_vocab_size, tc.eod_token)
            if not seen[0]:
                raise TokenizerError(f"no training documents to train {path} on")
            write_text_atomic(path, tokenizer.to_str(pretty=True))  # a killed build leaves no half file
        tokenizer = load_tokenizer(path)
        data = path.read_bytes()
    else:
        tokenizer = prepare(from_gpt2_files(tc.vocab, tc.merges, tc.eod_token))
        data = tokenizer.to_str().encode()
    return ResolvedTokenizer(data, hashlib.sha256(data).hexdigest(), vocab_size(tokenizer), eod_id(tokenizer, tc.eod_token))


# -- the job ---------------------------------------------------------------------------------------------


def with_documents_folders(config: BlendConfig) -> BlendConfig:
    """The config with each source's inputs resolved to stage folders: the folder of a `dataprep run`
    stands for its final stage's folder (blending/documents.py, documents_folder)."""
    sources = [dataclasses.replace(s, inputs=[documents_folder(f, s.source_value, FINAL_STAGE) for f in s.inputs])
               for s in config.sources]
    return dataclasses.replace(config, sources=sources)


def present_sources(config: BlendConfig, log=print, allow_partial: bool = False) -> tuple[list[SourceConfig], list[str]]:
    """Sources whose input folders all exist, and the names of those left out (skip_missing_sources).
    Every folder must be the output of the pipeline's final stage, unless `allow_partial`."""
    present, skipped = [], []
    for source in config.sources:
        missing = [f for f in source.inputs if not exists(f)]
        if missing and config.skip_missing_sources:
            skipped.append(source.name)
            log(f"source {source.name}: left out, no input folder {', '.join(missing)}")
        elif missing:
            raise InputError(f"source {source.name}: input folder {missing[0]} does not exist "
                             "(skip_missing_sources: true leaves such sources out)")
        else:
            present.append(source)
    if not present:
        raise InputError("none of the configured sources has its input folders")
    for source in present:
        for folder in source.inputs:  # clear errors for an unfinished or un-curated folder, before anything starts
            check_curated(folder, FINAL_STAGE, allow_partial)
    return present, skipped


def describe_inputs(present: list[SourceConfig]) -> list[dict]:
    """The input folders as a stage records them (dataprep/stage_folder.py): what a rerun compares."""
    return [folder_record(folder) for folder in sorted({f for s in present for f in s.inputs})]


def part_slices(config: BlendConfig, present: list[SourceConfig], partitions: int | None = None) -> list[PartSlice]:
    """What the tokenizing tasks read: every part file of every input folder, whole by default (one task
    each); with `partitions` more than the files, each file cut into as many row-group slices as it takes
    to give that many tasks."""
    folders = sorted({f for s in present for f in s.inputs})
    files = []
    for folder in folders:
        parts = list_parts(folder)
        if not parts:
            continue
        columns = set(read_schema(parts[0]).names)  # a clear error before any task starts
        needed = {"doc_id", "source", config.text_column}
        if not needed <= columns:
            raise InputError(f"{folder}: lacks the columns {sorted(needed - columns)}")
        claimed = tuple(sorted({s.source_value for s in present if folder in s.inputs}))
        files += [(part, folder, claimed) for part in parts]
    if not files:
        raise InputError(f"no part files in {', '.join(folders)}")
    slices = -(-partitions // len(files)) if partitions else 1
    return [PartSlice(str(part), folder, claimed, k, slices) for part, folder, claimed in files for k in range(slices)]


def build(config: BlendConfig, out: str | Path, overwrite: bool = False, master: str | None = None,
          partitions: int | None = None, allow_partial: bool = False, log=print,
          replace_changed: bool = False) -> Path | str:
    """Build the shards and manifest into `out` (a folder, or a URI on object storage); returns the
    manifest's path (its URI for a URI). An identical build is reused; one of other inputs or config is
    refused, or rebuilt with `replace_changed`."""
    listed = is_listed(str(out))
    out = str(out).rstrip("/") if listed else str(Path(out).absolute())
    started = time.perf_counter()
    config = with_documents_folders(config)
    present, skipped = present_sources(config, log, allow_partial)
    names = [s.name for s in present]
    tokenizer = resolve_tokenizer(config, log, present)
    record = folder_success_record(STAGE, __version__, describe_inputs(present), config.digest(tokenizer.sha256))
    manifest = f"{out}/{MANIFEST_FILE}" if listed else Path(out) / MANIFEST_FILE
    if reusable(out, record, overwrite, replace_changed):
        log(f"{out} is up to date (same inputs, config and tokenizer)")
        remove_unlisted(out)  # on object storage: a killed upload's files
        return manifest
    spark = get_spark(master, app_name="blending")
    parts = part_slices(config, present, partitions)

    # on object storage: built on local disk (the executors' runs and shards), then uploaded
    staging = Path(tempfile.mkdtemp(prefix="blend-")) if listed else None
    tmp = staging / "blend" if staging else Path(temporary_folder(out))
    for name in names:
        (tmp / name).mkdir(parents=True)
    try:
        _run(spark, config, tokenizer, parts, names, skipped, record, tmp, partitions, log)
        if listed:
            upload_folder(tmp, out)
        else:
            swap_into_place(str(tmp), out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    log(f"wrote {manifest} in {time.perf_counter() - started:.1f} s")
    return manifest


_worker_tokenizers: dict[str, Tokenizer] = {}


def _worker_tokenizer(build_id: str, tokenizer_json: str) -> Tokenizer:
    """The tokenizer, loaded once per build in each Python worker: the tasks a reused worker runs for one
    build share it, and with it the word cache its BPE model warms up (a new build starts afresh)."""
    if build_id not in _worker_tokenizers:
        _worker_tokenizers.clear()
        _worker_tokenizers[build_id] = prepare(Tokenizer.from_str(tokenizer_json))
    return _worker_tokenizers[build_id]


def _tokenize_task(tokenizer: ResolvedTokenizer, source_index: dict[str, int], valid_fraction: float,
                   text_column: str, run_dir: str):
    tokenizer_json, eod, dtype = tokenizer.json_bytes.decode(), tokenizer.eod_id, tokenizer.dtype.str

    def run(parts):
        single_threaded()  # a Spark task is one core
        tokenizer = _worker_tokenizer(run_dir, tokenizer_json)  # run_dir: this build's own
        yield tokenize_parts(parts, run_dir, tokenizer, eod, np.dtype(dtype), source_index, valid_fraction, text_column)
    return run


def _run(spark, config, tokenizer, parts: list[PartSlice], names, skipped, record, tmp: Path, partitions, log) -> Path:
    source_index = {s.source_value: names.index(s.name) for s in config.sources if s.name in names}
    dtype = tokenizer.dtype
    run_dir = tmp / RUNS
    run_dir.mkdir()
    log(f"tokenizing {len(names)} sources ({tokenizer.vocab_size}-token vocabulary, {dtype.name} shards)")
    t0 = time.perf_counter()
    task = _tokenize_task(tokenizer, source_index, config.valid_fraction, config.text_column, str(run_dir))
    tasks = min(partitions or len(parts), len(parts))
    runs = spark.sparkContext.parallelize(parts, tasks).mapPartitions(task).collect()
    meta = read_meta(runs)
    log(f"tokenized {meta.num_rows:,} documents in {time.perf_counter() - t0:.1f} s")
    stats, empty = _accounting(meta, names, skipped, runs)
    for name in empty:
        if not config.skip_missing_sources:
            raise InputError(f"source {name}: no documents in its inputs (skip_missing_sources: true leaves such sources out)")
        log(f"source {name}: left out, no documents in its inputs")
    present = [n for n in names if n not in empty]
    shards = [s for s in plan(meta.filter(pc.is_null(meta["drop"])), names, config.shard_size_tokens)
              if s.source in present]
    for name in present:
        if not any(s.source == name and s.split == "train" for s in shards):
            raise InputError(f"source {name}: every document fell in the validation split; it needs more documents")
    t0 = time.perf_counter()
    written = _write(spark, shards, dtype, tmp, run_dir)
    log(f"wrote {len(shards)} shards in {time.perf_counter() - t0:.1f} s")
    shutil.rmtree(run_dir)

    weights = dict(zip(names, (s.weight for s in config.sources if s.name in names), strict=True))
    total_weight = sum(weights[n] for n in present)
    sources = {}
    for name in present:
        entry = {"weight": weights[name] / total_weight}
        for split in SPLITS:
            entry[split] = [_shard_entry(s, w) for s, w in zip(shards, written, strict=True)
                            if s.source == name and s.split == split]
        sources[name] = entry
    (tmp / TOKENIZER_FILE).write_bytes(tokenizer.json_bytes)
    tokenizer_entry = {"file": TOKENIZER_FILE, "sha256": tokenizer.sha256, "vocab_size": tokenizer.vocab_size,
                       "eod_id": tokenizer.eod_id}
    manifest_path = write_manifest(tmp, manifest_dict(tokenizer_entry, sources))
    for name in set(names) - set(present):
        shutil.rmtree(tmp / name)
    stats.out_rows = sum(w["documents"] for w in written)
    stats.out_bytes = sum(w["bin_bytes"] + w["idx_bytes"] + w["docs_bytes"] for w in written)
    stats.out_tokens = sum(w["tokens"] for w in written)
    (tmp / STATS_FILE).write_text(stats.to_json())
    log(stats.funnel_table())
    (tmp / SUCCESS).write_text(json.dumps(record, indent=2) + "\n")
    return manifest_path


def _write(spark: SparkSession, shards: list[PlannedShard], dtype: np.dtype, tmp: Path, run_dir: Path) -> list[dict]:
    """Pass 3, one task per shard; each shard's counts, sizes and hashes, checked against the plan."""
    dtype_str, out, runs = dtype.str, str(tmp), str(run_dir)

    def write(shard: PlannedShard) -> dict:
        w = write_shard(shard, out, runs, np.dtype(dtype_str))
        return {"documents": w.documents, "tokens": w.tokens, "bin_bytes": w.bin.bytes, "bin_sha256": w.bin.sha256,
                "idx_bytes": w.idx.bytes, "idx_sha256": w.idx.sha256, "docs_bytes": w.docs.bytes,
                "docs_sha256": w.docs.sha256}

    written = spark.sparkContext.parallelize(shards, max(len(shards), 1)).map(write).collect()
    for shard, w in zip(shards, written, strict=True):
        if (w["documents"], w["tokens"]) != (shard.documents, shard.tokens):
            raise RuntimeError(f"shard {shard.prefix} was written with other documents than planned: {w}")
    return written


def _shard_entry(shard: PlannedShard, written: dict) -> dict:
    return {"prefix": shard.prefix, "documents": written["documents"], "tokens": written["tokens"],
            "bin": {"bytes": written["bin_bytes"], "sha256": written["bin_sha256"]},
            "idx": {"bytes": written["idx_bytes"], "sha256": written["idx_sha256"]},
            "docs": {"bytes": written["docs_bytes"], "sha256": written["docs_sha256"]}}


def _accounting(meta: pa.Table, names: list[str], skipped: list[str], runs: list[TokenizedRun]) -> tuple[StageStats, list[str]]:
    """stats.json for the documents read (each kept or dropped for one reason), and the sources with none."""
    stats = StageStats(stage=STAGE, dropped={r: 0 for r in DROP_REASONS})
    per_source = {}
    for s, name in enumerate(names):
        rows = meta.filter(pc.equal(meta["source_index"], s))
        kept = rows.filter(pc.is_null(rows["drop"]))
        entry = {"in_rows": rows.num_rows, "kept_rows": kept.num_rows,
                 "dropped": {r: int(pc.sum(pc.equal(rows["drop"], r)).as_py() or 0) for r in DROP_REASONS}}
        for split_index, split in enumerate(SPLITS):
            part = kept.filter(pc.equal(kept["split"], split_index))
            entry[f"{split}_documents"] = part.num_rows
            entry[f"{split}_tokens"] = int(pc.sum(part["n_tokens"]).as_py() or 0)
        per_source[name] = entry
        stats.in_rows += rows.num_rows
        stats.in_bytes += int(pc.sum(rows["text_bytes"]).as_py() or 0)
        stats.kept_rows += kept.num_rows
        stats.kept_bytes += int(pc.sum(kept["text_bytes"]).as_py() or 0)
        for reason, n in entry["dropped"].items():
            stats.dropped[reason] += n
    stats.check()
    unclaimed: dict[str, dict[str, int]] = {}
    for run in runs:
        for (folder, source), count in run.unclaimed.items():
            per_folder = unclaimed.setdefault(folder, {})
            per_folder[source] = per_folder.get(source, 0) + count
    unclaimed = {f: dict(sorted(c.items())) for f, c in sorted(unclaimed.items())}
    stats.extra = {"sources": per_source, "skipped_sources": skipped, "unclaimed_rows": unclaimed}
    return stats, [n for n in names if per_source[n]["in_rows"] == 0]
