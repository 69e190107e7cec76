"""The shard builder's three passes as plain functions (Spark only wires them, in blending/build.py).

1. tokenize: a task reads its part files (slices of their row groups) itself and turns each document
   into one metadata row, its tokens appended to the task's run file (a flat token array); neither
   texts nor tokens travel through the JVM or the driver, only the metadata's file name does.
2. plan: per (source, split), the kept documents ordered by doc_id, cut into shards of at most
   `shard_size_tokens` tokens (a longer document gets a shard of its own).
3. write: a shard's documents copied from the runs, in doc_id order, into its `.bin` and `.idx`, and
   their doc_id, origin and url into its document index (blending/docindex.py).
"""

from __future__ import annotations

import collections
import dataclasses
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tokenizers import Tokenizer

from blending.docindex import write_document_index
from blending.documents import drop_reason, is_validation, plan_shards
from blending.indexed import IndexedDatasetWriter, WrittenShard
from blending.manifest import SPLITS
from blending.stage_folder import InputError, resolve
from blending.tokenizer import encode_documents

ENCODE_CHUNK = 1024  # documents per encode_batch call
COPY_BUFFER_TOKENS = 1 << 22  # a shard writer holds at most about this many tokens before writing them
# origin and url ride along for the shards' document indexes (some 100 bytes per document on the driver)
META_SCHEMA = pa.schema([("source_index", pa.int32()), ("split", pa.int32()), ("doc_id", pa.string()),
                         ("origin", pa.string()), ("url", pa.string()),
                         ("n_tokens", pa.int64()), ("text_bytes", pa.int64()), ("drop", pa.string()),
                         ("run", pa.string()), ("offset", pa.int64())])


# -- pass 1 ----------------------------------------------------------------------------------------------


def tokenize_batch(batch: pa.RecordBatch, tokenizer: Tokenizer, eod: int, dtype: np.dtype,
                   source_index: dict[str, int], valid_fraction: float,
                   text_column: str) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Rows (doc_id, source, origin, url, text) -> their metadata columns (no run/offset yet) and the kept documents'
    tokens, concatenated in row order, each ending with `eod`. A dropped document has 0 tokens."""
    doc_ids = batch.column("doc_id").to_pylist()
    texts = batch.column(text_column).to_pylist()
    drops = [drop_reason(t) for t in texts]
    flat, kept_lengths = encode_documents(tokenizer, [t for t, d in zip(texts, drops, strict=True) if d is None],
                                          eod, dtype)
    lengths = np.zeros(len(texts), dtype=np.int64)
    lengths[[i for i, d in enumerate(drops) if d is None]] = kept_lengths
    columns = {
        "source_index": pa.array([source_index[s] for s in batch.column("source").to_pylist()], pa.int32()),
        "split": pa.array([int(is_validation(d, valid_fraction)) for d in doc_ids], pa.int32()),
        "doc_id": pa.array(doc_ids, pa.string()),
        "origin": batch.column("origin").cast(pa.string()),
        "url": batch.column("url").cast(pa.string()),
        "n_tokens": pa.array(lengths, pa.int64()),
        "text_bytes": pc.fill_null(pc.binary_length(batch.column(text_column)), 0).cast(pa.int64()),
        "drop": pa.array(drops, pa.string()),
    }
    return columns, flat


@dataclass(frozen=True)
class PartSlice:
    """What a tokenizing task reads: every `slices`-th row group of a part file, from the `slice`-th on,
    keeping the rows of the `claimed` sources (the others are tallied, as unclaimed rows of `folder`)."""
    path: str  # a part file: a path, or a URI on object storage
    folder: str
    claimed: tuple[str, ...]
    slice: int = 0
    slices: int = 1


@dataclass(frozen=True)
class TokenizedRun:
    """A tokenizing task's output: its run file, the META_SCHEMA rows pointing into it (an Arrow IPC file
    beside it), and the rows of its part files that no source claims, per (folder, source)."""
    run: str
    meta_file: str
    unclaimed: dict[tuple[str, str], int]


def read_slice(part: PartSlice, text_column: str, batch_size: int = ENCODE_CHUNK) -> Iterator[pa.RecordBatch]:
    """The slice's rows as batches of doc_id, source, text, origin, url (origin and url null where the
    file lacks them)."""
    wanted = ["doc_id", "source", text_column, "origin", "url"]
    fs, path = resolve(part.path)
    with fs.open_input_file(path) as f:
        parquet = pq.ParquetFile(f)
        names = set(parquet.schema_arrow.names)
        if missing := {"doc_id", "source", text_column} - names:
            raise InputError(f"{part.path}: lacks the columns {sorted(missing)}")
        groups = list(range(part.slice, parquet.num_row_groups, part.slices))
        if not groups:
            return
        for batch in parquet.iter_batches(batch_size=batch_size, row_groups=groups,
                                          columns=[c for c in wanted if c in names]):
            yield pa.RecordBatch.from_arrays(
                [batch.column(c).cast(pa.string()) if c in names else pa.nulls(batch.num_rows, pa.string())
                 for c in wanted], names=wanted)


def tokenize_parts(parts: Iterable[PartSlice], run_dir: str | Path, tokenizer: Tokenizer, eod: int, dtype: np.dtype,
                   source_index: dict[str, int], valid_fraction: float, text_column: str) -> TokenizedRun:
    """Tokenize a task's part slices into one new run file, and their metadata into RUN.meta beside it.
    Reading the files here, not through Spark, keeps the documents out of the JVM altogether."""
    run = f"run-{uuid.uuid4().hex}"  # unique per task attempt: a retried task never mixes two attempts
    meta_file = str(Path(run_dir) / f"{run}.meta")
    unclaimed: collections.Counter = collections.Counter()
    offset = 0
    with open(Path(run_dir) / run, "wb") as out, pa.ipc.new_file(meta_file, META_SCHEMA) as meta:
        for part in parts:
            claimed = pa.array(part.claimed, pa.string())
            for batch in read_slice(part, text_column):
                mine = pc.is_in(batch.column("source"), value_set=claimed)  # a null source is no source's
                others = batch.filter(pc.invert(mine)).column("source").to_pylist()
                unclaimed.update((part.folder, str(source)) for source in others)
                batch = batch.filter(mine)
                if not batch.num_rows:
                    continue
                columns, flat = tokenize_batch(batch, tokenizer, eod, dtype, source_index, valid_fraction, text_column)
                out.write(flat.tobytes())
                lengths = columns["n_tokens"].to_numpy()
                starts = offset + np.cumsum(lengths) - lengths
                offset += int(lengths.sum())
                columns["run"] = pa.array([run] * len(lengths), pa.string())
                columns["offset"] = pa.array(starts, pa.int64())
                meta.write_batch(pa.RecordBatch.from_arrays(list(columns.values()), schema=META_SCHEMA))
    return TokenizedRun(run, meta_file, dict(unclaimed))


def read_meta(runs: Iterable[TokenizedRun]) -> pa.Table:
    """The metadata rows of every run, in one table (for the plan, on the driver)."""
    tables = [pa.ipc.open_file(r.meta_file).read_all() for r in runs]
    return pa.concat_tables(tables) if tables else META_SCHEMA.empty_table()


# -- pass 2 ----------------------------------------------------------------------------------------------


@dataclass
class PlannedShard:
    source_index: int
    source: str
    split: str
    index: int
    runs: list[str]  # run files the documents come from
    run_of_doc: np.ndarray  # per document, in doc_id order: index into `runs`
    offsets: np.ndarray  # per document: first token in its run
    lengths: np.ndarray  # per document: tokens, EOD included
    doc_ids: list[str]  # per document, for the document index
    origins: list[str | None]
    urls: list[str | None]

    @property
    def prefix(self) -> str:
        return f"{self.source}/{self.split}_{self.index:05d}"

    @property
    def documents(self) -> int:
        return int(self.lengths.size)

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())


def plan(meta: pa.Table, source_names: list[str], shard_size_tokens: int) -> list[PlannedShard]:
    """Shards of every (source, split), from the kept documents' metadata; sources in the given order,
    train before valid, shards in doc_id order."""
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
            if doc_ids.size == 0:
                continue
            lengths = rows["n_tokens"].to_numpy()
            origins, urls = rows["origin"].to_pylist(), rows["url"].to_pylist()
            offsets = rows["offset"].to_numpy()
            run_codes = pc.dictionary_encode(rows["run"]).combine_chunks()
            codes, run_names = run_codes.indices.to_numpy(zero_copy_only=False), run_codes.dictionary.to_pylist()
            starts = plan_shards(lengths.tolist(), shard_size_tokens)
            for index, (a, b) in enumerate(zip(starts, starts[1:] + [doc_ids.size], strict=True)):
                used, run_of_doc = np.unique(codes[a:b], return_inverse=True)
                runs = [run_names[int(c)] for c in used]
                shards.append(PlannedShard(s, name, split, index, runs, run_of_doc.astype(np.int32),
                                           offsets[a:b].copy(), lengths[a:b].copy(), doc_ids[a:b].tolist(),
                                           origins[a:b], urls[a:b]))
    return shards


# -- pass 3 ----------------------------------------------------------------------------------------------


def write_shard(shard: PlannedShard, out_dir: str | Path, run_dir: str | Path, dtype: np.dtype) -> WrittenShard:
    """Copy the shard's documents from the runs into OUT_DIR/PREFIX.bin/.idx, in doc_id order, and write
    their document index OUT_DIR/PREFIX.docs.parquet."""
    runs = [np.memmap(Path(run_dir) / run, dtype=dtype, mode="r") for run in shard.runs]
    writer = IndexedDatasetWriter(Path(out_dir) / shard.prefix, dtype)
    pieces, piece_lengths, held = [], [], 0
    for run, offset, length in zip(shard.run_of_doc.tolist(), shard.offsets.tolist(), shard.lengths.tolist(),
                                   strict=True):
        pieces.append(runs[run][offset: offset + length])
        piece_lengths.append(length)
        held += length
        if held >= COPY_BUFFER_TOKENS:
            writer.add_documents(np.concatenate(pieces), np.asarray(piece_lengths))
            pieces, piece_lengths, held = [], [], 0
    if pieces:
        writer.add_documents(np.concatenate(pieces), np.asarray(piece_lengths))
    docs = write_document_index(Path(out_dir) / shard.prefix, shard.doc_ids, shard.origins, shard.urls)
    return dataclasses.replace(writer.close(), docs=docs)
