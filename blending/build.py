"""The shard builder: documents of every source -> tokenized Megatron shards + manifest.json.

Spark does the work in three passes over the documents, tokenizing once:
  1. tokenize (mapInArrow, `encode_batch` on chunks of documents, EOD appended), draw the validation
     split from a stable hash of doc_id, and persist the token rows;
  2. collect (source, split, doc_id, token count) to the driver, which orders each source split by
     doc_id and cuts it into shards of at most `shard_size_tokens` tokens (O(documents) small ints);
  3. route every document to its shard, sort each shard by doc_id, and write each shard's `.bin`/`.idx`
     on the executors (mapInArrow), streaming: a task holds one batch plus the shard's lengths.
The bytes of a shard depend only on its documents in doc_id order, never on the Spark master or the
partitioning. Executors write under OUT.tmp-*, so OUT must be on a filesystem they share with the
driver (local disk in local mode; NFS/Lustre on a cluster, where Megatron reads shards anyway).
Everything goes into OUT.tmp-*, which is renamed to OUT once manifest.json, stats.json and _SUCCESS
(written last) are there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from tokenizers import Tokenizer

from blending import __version__
from blending.config import BlendConfig, TokenizerConfig
from blending.documents import (
    DROP_REASONS,
    SUCCESS,
    InputError,
    drop_reason,
    folder_exists,
    is_validation,
    iter_texts,
    plan_shards,
    stage_parts,
)
from blending.indexed import IndexedDatasetWriter
from blending.manifest import MANIFEST_FILE, SPLITS, manifest_dict, write_manifest
from blending.tokenizer import (
    TOKENIZER_FILE,
    encode_documents,
    eod_id,
    from_gpt2_files,
    load_tokenizer,
    prepare,
    single_threaded,
    token_dtype,
    train_bpe,
    vocab_size,
)
from dataprep.spark import get_spark
from dataprep.stats import StageStats

STAGE = "blend"
STATS_FILE = "stats.json"
ENCODE_CHUNK = 1024  # documents per encode_batch call: keeps a token batch far below Arrow's 2 GiB
TOKENS_DDL = "source_index int, split int, doc_id string, n_tokens long, text_bytes long, drop string, tokens binary"
SHARD_DDL = "shard_key int, documents long, tokens long, bin_bytes long, bin_sha256 string, idx_bytes long, idx_sha256 string"
_SHARD_SCHEMA = pa.schema([("shard_key", pa.int32()), ("documents", pa.int64()), ("tokens", pa.int64()),
                           ("bin_bytes", pa.int64()), ("bin_sha256", pa.string()), ("idx_bytes", pa.int64()),
                           ("idx_sha256", pa.string())])


class OutputExistsError(RuntimeError):
    """OUT holds something else than this build's result; --overwrite replaces it."""


@dataclass(frozen=True)
class ResolvedTokenizer:
    json_bytes: bytes  # written as OUT/tokenizer.json
    sha256: str
    vocab_size: int
    eod_id: int

    @property
    def dtype(self) -> np.dtype:
        return token_dtype(self.vocab_size)


def resolve_tokenizer(config: BlendConfig, log=print) -> ResolvedTokenizer:
    """The configured tokenizer; a missing `file` with `train_vocab_size` is trained first on the
    blend's training documents (never the validation ones) and saved there."""
    tc: TokenizerConfig = config.tokenizer
    if tc.file is not None:
        path = Path(tc.file)
        if not path.is_file() and tc.train_vocab_size:
            log(f"training a {tc.train_vocab_size}-token byte-level BPE on the blend's training documents -> {path}")
            texts = (text for source in config.sources if all(folder_exists(f) for f in source.inputs)
                     for text in iter_texts(source.inputs, source.source_value, config.text_column, config.valid_fraction))
            tokenizer = train_bpe(texts, tc.train_vocab_size, tc.eod_token)
            path.parent.mkdir(parents=True, exist_ok=True)
            tokenizer.save(str(path))
        tokenizer = load_tokenizer(path)
        data = path.read_bytes()
    else:
        tokenizer = prepare(from_gpt2_files(tc.vocab, tc.merges, tc.eod_token))
        data = tokenizer.to_str().encode()
    return ResolvedTokenizer(data, hashlib.sha256(data).hexdigest(), vocab_size(tokenizer), eod_id(tokenizer, tc.eod_token))


# -- pass 1: tokenize ------------------------------------------------------------------------------------


def tokenize_batch(batch: pa.RecordBatch, tokenizer: Tokenizer, eod: int, dtype: np.dtype,
                   source_index: dict[str, int], valid_fraction: float, text_column: str) -> pa.RecordBatch:
    """Rows (doc_id, source, text) -> TOKENS_DDL rows; dropped documents keep their row, without tokens."""
    doc_ids = batch.column("doc_id").to_pylist()
    texts = batch.column(text_column).to_pylist()
    drops = [drop_reason(t) for t in texts]
    kept = [t for t, d in zip(texts, drops, strict=True) if d is None]
    flat, kept_lengths = encode_documents(tokenizer, kept, eod, dtype)
    lengths = np.zeros(len(texts), dtype=np.int64)
    lengths[[i for i, d in enumerate(drops) if d is None]] = kept_lengths
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths * dtype.itemsize, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError("a chunk of documents has over 2 GiB of tokens; lower ENCODE_CHUNK")
    tokens = pa.Array.from_buffers(pa.binary(), len(texts), [None, pa.py_buffer(offsets.astype(np.int32)),
                                                               pa.py_buffer(flat)])
    text_bytes = pc.fill_null(pc.binary_length(batch.column(text_column)), 0).cast(pa.int64())
    return pa.RecordBatch.from_arrays([
        pa.array([source_index[s] for s in batch.column("source").to_pylist()], pa.int32()),
        pa.array([int(is_validation(d, valid_fraction)) for d in doc_ids], pa.int32()),
        pa.array(doc_ids, pa.string()),
        pa.array(lengths, pa.int64()),
        text_bytes,
        pa.array(drops, pa.string()),
        tokens,
    ], names=["source_index", "split", "doc_id", "n_tokens", "text_bytes", "drop", "tokens"])


def _tokenizer_task(tokenizer_json: str, eod: int, dtype: str, source_index: dict[str, int],
                    valid_fraction: float, text_column: str):
    def run(batches):
        single_threaded()
        tokenizer = prepare(Tokenizer.from_str(tokenizer_json))
        for batch in batches:
            for start in range(0, batch.num_rows, ENCODE_CHUNK):
                yield tokenize_batch(batch.slice(start, ENCODE_CHUNK), tokenizer, eod, np.dtype(dtype),
                                     source_index, valid_fraction, text_column)
    return run


# -- pass 2: plan ----------------------------------------------------------------------------------------


@dataclass
class PlannedShard:
    key: int  # position in the plan: sources in config order, train before valid, shards in doc_id order
    source_index: int
    source: str
    split: str
    index: int
    first_doc_id: str
    documents: int
    tokens: int

    @property
    def prefix(self) -> str:
        return f"{self.source}/{self.split}_{self.index:05d}"


def plan(meta: pa.Table, source_names: list[str], shard_size_tokens: int) -> list[PlannedShard]:
    """Shards of every (source, split) from the kept documents' (source_index, split, doc_id, n_tokens)."""
    shards: list[PlannedShard] = []
    for s, name in enumerate(source_names):
        for split_index, split in enumerate(SPLITS):
            rows = meta.filter(pc.and_(pc.equal(meta["source_index"], s), pc.equal(meta["split"], split_index)))
            rows = rows.take(pc.sort_indices(rows, [("doc_id", "ascending")]))
            doc_ids = rows["doc_id"].to_numpy(zero_copy_only=False)
            if doc_ids.size > 1:
                same = np.flatnonzero(doc_ids[1:] == doc_ids[:-1])
                if same.size:
                    raise InputError(f"source {name!r}: doc_id {doc_ids[same[0]]} occurs twice "
                                     "(an input folder listed twice, or two stages' outputs mixed?)")
            lengths = rows["n_tokens"].to_numpy()
            starts = plan_shards(lengths.tolist(), shard_size_tokens)
            ends = starts[1:] + [doc_ids.size]
            for index, (a, b) in enumerate(zip(starts, ends, strict=True)):
                shards.append(PlannedShard(len(shards), s, name, split, index, str(doc_ids[a]), b - a,
                                           int(lengths[a:b].sum())))
    return shards


# -- pass 3: write ---------------------------------------------------------------------------------------


def _router_task(boundaries: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]):
    """Adds shard_key: the last shard of the document's (source, split) whose first doc_id <= its doc_id."""
    def run(batches):
        for batch in batches:
            keys = np.empty(batch.num_rows, dtype=np.int32)
            source = batch.column("source_index").to_numpy()
            split = batch.column("split").to_numpy()
            doc_ids = batch.column("doc_id").to_numpy(zero_copy_only=False).astype(str)
            for (s, sp), (firsts, shard_keys) in boundaries.items():
                rows = np.flatnonzero((source == s) & (split == sp))
                if rows.size:
                    keys[rows] = shard_keys[np.searchsorted(firsts, doc_ids[rows], side="right") - 1]
            yield pa.RecordBatch.from_arrays(
                [pa.array(keys, pa.int32()), batch.column("doc_id"), batch.column("n_tokens"), batch.column("tokens")],
                names=["shard_key", "doc_id", "n_tokens", "tokens"])
    return run


def write_sorted_shards(batches, prefixes: dict[int, str], dtype: np.dtype):
    """Write documents arriving sorted by (shard_key, doc_id) into their shards; one metadata row per shard."""
    writer, key = None, None

    def finish() -> pa.RecordBatch:
        w = writer.close()
        return pa.RecordBatch.from_pylist([{
            "shard_key": key, "documents": w.documents, "tokens": w.tokens, "bin_bytes": w.bin.bytes,
            "bin_sha256": w.bin.sha256, "idx_bytes": w.idx.bytes, "idx_sha256": w.idx.sha256}], schema=_SHARD_SCHEMA)

    for batch in batches:
        keys = batch.column("shard_key").to_numpy()
        cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, keys.size], strict=True):
            if keys[a] != key:
                if writer is not None:
                    yield finish()
                key = int(keys[a])
                writer = IndexedDatasetWriter(prefixes[key], dtype)
            run = batch.slice(a, b - a)
            column = run.column("tokens")
            offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset: column.offset + len(column) + 1]
            data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]]
            writer.add_documents(data.view(dtype), run.column("n_tokens").to_numpy())
    if writer is not None:
        yield finish()


def _writer_task(prefixes: dict[int, str], dtype: str):
    def run(batches):
        yield from write_sorted_shards(batches, prefixes, np.dtype(dtype))
    return run


# -- the job ---------------------------------------------------------------------------------------------


def _read_sources(spark: SparkSession, config: BlendConfig, log) -> tuple[DataFrame, list[dict], list[str], list[str], dict]:
    """The claimed rows of every input folder; described input files; present and skipped source names;
    and a lazily counted DataFrame of rows nobody claims."""
    present, skipped = [], []
    for source in config.sources:
        missing = [f for f in source.inputs if not folder_exists(f)]
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
    folders = sorted({f for s in present for f in s.inputs})
    frames, described, unclaimed = [], [], []
    for folder in folders:
        parts = stage_parts(folder)
        described += [{"path": str(p), "size": p.stat().st_size} for p in parts]
        if not parts:
            continue
        columns = set(pq.read_schema(parts[0]).names)
        needed = {"doc_id", "source", config.text_column}
        if not needed <= columns:
            raise InputError(f"{folder}: lacks the columns {sorted(needed - columns)}")
        # an explicit schema spares Spark a job that reads every footer
        df = spark.read.schema(f"doc_id string, source string, `{config.text_column}` string").parquet(*map(str, parts))
        claimed = [s.source_value for s in present if folder in s.inputs]
        frames.append(df.where(F.col("source").isin(claimed)))
        unclaimed.append(df.where(~F.col("source").isin(claimed)).select("source")
                         .mapInArrow(_count_values, "source string, count long")
                         .withColumn("folder", F.lit(folder)))
    if not frames:
        raise InputError(f"no part files in {', '.join(folders)}")
    docs = frames[0]
    for frame in frames[1:]:
        docs = docs.unionByName(frame)
    unclaimed_df = unclaimed[0]
    for frame in unclaimed[1:]:
        unclaimed_df = unclaimed_df.unionByName(frame)
    return docs, sorted(described, key=lambda d: d["path"]), [s.name for s in present], skipped, unclaimed_df


def _count_values(batches):
    """Rows per source value within a partition (summed on the driver): no shuffle for a tally."""
    counts: dict[str, int] = {}
    for batch in batches:
        for value, n in zip(*pc.value_counts(batch.column("source")).flatten(), strict=True):
            counts[value.as_py()] = counts.get(value.as_py(), 0) + n.as_py()
    yield pa.RecordBatch.from_pylist([{"source": k, "count": v} for k, v in counts.items()],
                                     schema=pa.schema([("source", pa.string()), ("count", pa.int64())]))


def success_record(inputs: list[dict], config_hash: str) -> dict:
    return {"stage": STAGE, "code_version": __version__, "inputs": inputs, "config_hash": config_hash}


def _existing_output(out: Path, record: dict, overwrite: bool) -> bool:
    """True when OUT already holds this exact build; raises when something else is in the way."""
    if not out.exists() or overwrite:
        return False
    success = out / SUCCESS
    if success.is_file():
        existing = json.loads(success.read_text())
        if existing == record:
            return True
        differs = [k for k in record if existing.get(k) != record[k]]
        raise OutputExistsError(f"{out} holds shards built from other {', '.join(differs)}; use --overwrite to replace them")
    raise OutputExistsError(f"{out} exists and is not a finished shard build; use --overwrite to replace it")


def build(config: BlendConfig, out: str | Path, overwrite: bool = False, master: str | None = None,
          partitions: int | None = None, log=print) -> Path:
    """Build the shards and manifest into `out`; returns the manifest's path."""
    out = Path(out).absolute()
    started = time.perf_counter()
    tokenizer = resolve_tokenizer(config, log)
    spark = get_spark(master, app_name="blending")
    docs, inputs, names, skipped, unclaimed_df = _read_sources(spark, config, log)
    record = success_record(inputs, config.digest(tokenizer.sha256))
    if _existing_output(out, record, overwrite):
        log(f"{out} is up to date (same inputs, config and tokenizer)")
        return out / MANIFEST_FILE

    tmp = out.parent / f"{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    for name in names:
        (tmp / name).mkdir(parents=True)
    try:
        manifest_path = _run(spark, config, tokenizer, docs, names, skipped, unclaimed_df, record, tmp, partitions, log)
        if out.exists():
            old = out.parent / f"{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {out / manifest_path.name} in {time.perf_counter() - started:.1f} s")
    return out / manifest_path.name


def _run(spark, config, tokenizer, docs, names, skipped, unclaimed_df, record, tmp: Path, partitions, log) -> Path:
    source_index = {s.source_value: names.index(s.name) for s in config.sources if s.name in names}
    if partitions:
        docs = docs.repartition(partitions)
    dtype = tokenizer.dtype
    task = _tokenizer_task(tokenizer.json_bytes.decode(), tokenizer.eod_id, dtype.str, source_index,
                           config.valid_fraction, config.text_column)
    tokens = docs.mapInArrow(task, TOKENS_DDL).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        log(f"tokenizing {len(names)} sources ({tokenizer.vocab_size}-token vocabulary, {dtype.name} shards)")
        t0 = time.perf_counter()
        meta = tokens.select("source_index", "split", "doc_id", "n_tokens", "text_bytes", "drop").toArrow()
        log(f"tokenized {meta.num_rows:,} documents in {time.perf_counter() - t0:.1f} s")
        kept_meta = meta.filter(pc.is_null(meta["drop"]))
        t0 = time.perf_counter()
        stats, empty = _accounting(meta, names, skipped, unclaimed_df)
        log(f"counted in {time.perf_counter() - t0:.1f} s")
        for name in empty:
            if not config.skip_missing_sources:
                raise InputError(f"source {name}: no documents in its inputs "
                                 "(skip_missing_sources: true leaves such sources out)")
            log(f"source {name}: left out, no documents in its inputs")
        present = [n for n in names if n not in empty]
        shards = [s for s in plan(kept_meta, names, config.shard_size_tokens) if s.source in present]
        for name in present:
            if not any(s.source == name and s.split == "train" for s in shards):
                raise InputError(f"source {name}: every document fell in the validation split; it needs more documents")
        t0 = time.perf_counter()
        written = _write(tokens, shards, dtype, tmp)
        log(f"wrote {len(shards)} shards in {time.perf_counter() - t0:.1f} s")
    finally:
        tokens.unpersist()

    weights = dict(zip(names, (s.weight for s in config.sources if s.name in names), strict=True))
    total_weight = sum(weights[n] for n in present)
    sources = {}
    for name in present:
        entry = {"weight": weights[name] / total_weight}
        for split in SPLITS:
            entry[split] = [_shard_entry(s, written[s.key]) for s in shards if s.source == name and s.split == split]
        sources[name] = entry
    (tmp / TOKENIZER_FILE).write_bytes(tokenizer.json_bytes)
    tokenizer_entry = {"file": TOKENIZER_FILE, "sha256": tokenizer.sha256, "vocab_size": tokenizer.vocab_size,
                       "eod_id": tokenizer.eod_id}
    manifest_path = write_manifest(tmp, manifest_dict(tokenizer_entry, sources))
    for name in set(names) - set(present):
        shutil.rmtree(tmp / name)
    stats.out_rows = sum(w["documents"] for w in written.values())
    stats.out_bytes = sum(w["bin_bytes"] + w["idx_bytes"] for w in written.values())
    stats.out_tokens = sum(w["tokens"] for w in written.values())
    (tmp / STATS_FILE).write_text(stats.to_json())
    log(stats.funnel_table())
    (tmp / SUCCESS).write_text(json.dumps(record, indent=2) + "\n")
    return manifest_path


def _write(tokens: DataFrame, shards: list[PlannedShard], dtype: np.dtype, tmp: Path) -> dict[int, dict]:
    """Pass 3; returns each shard's written counts, sizes and hashes, checked against the plan."""
    boundaries: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for shard in shards:
        group = (shard.source_index, SPLITS.index(shard.split))
        firsts, keys = boundaries.get(group, ([], []))
        boundaries[group] = (firsts + [shard.first_doc_id], keys + [shard.key])
    boundaries = {g: (np.array(f), np.array(k, dtype=np.int32)) for g, (f, k) in boundaries.items()}
    prefixes = {shard.key: str(tmp / shard.prefix) for shard in shards}
    routed = tokens.where(F.col("drop").isNull()).mapInArrow(
        _router_task(boundaries), "shard_key int, doc_id string, n_tokens long, tokens binary")
    written = (routed.repartition(max(len(shards), 1), "shard_key")
               .sortWithinPartitions("shard_key", "doc_id")
               .mapInArrow(_writer_task(prefixes, dtype.str), SHARD_DDL)
               .toArrow().to_pylist())
    by_key = {row["shard_key"]: row for row in written}
    for shard in shards:
        row = by_key.get(shard.key)
        if len(written) != len(shards) or row is None or (row["documents"], row["tokens"]) != (shard.documents, shard.tokens):
            raise RuntimeError(f"shard {shard.prefix} was written with other documents than planned: {row}")
    return by_key


def _shard_entry(shard: PlannedShard, written: dict) -> dict:
    return {"prefix": shard.prefix, "documents": written["documents"], "tokens": written["tokens"],
            "bin": {"bytes": written["bin_bytes"], "sha256": written["bin_sha256"]},
            "idx": {"bytes": written["idx_bytes"], "sha256": written["idx_sha256"]}}


def _accounting(meta: pa.Table, names: list[str], skipped: list[str], unclaimed_df: DataFrame) -> tuple[StageStats, list[str]]:
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
    for row in unclaimed_df.toArrow().to_pylist():
        per_folder = unclaimed.setdefault(row["folder"], {})
        per_folder[str(row["source"])] = per_folder.get(str(row["source"]), 0) + row["count"]
    unclaimed = {f: dict(sorted(c.items())) for f, c in sorted(unclaimed.items())}
    stats.extra = {"sources": per_source, "skipped_sources": skipped, "unclaimed_rows": unclaimed}
    return stats, [n for n in names if per_source[n]["in_rows"] == 0]
