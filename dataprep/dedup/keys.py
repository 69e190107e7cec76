"""Per-document dedup keys, computed once per document in a Spark task over Arrow batches: the
normalised URL, the normalised text's hash, the rank fields that choose a representative, the MinHash
signature (kept in the output, so later runs reuse it) and the LSH band keys."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from dataprep.config import DedupConfig
from dataprep.dedup.minhash import EMPTY, band_keys, signatures
from dataprep.dedup.normalize import normalize_url, text_key
from dataprep.dedup.ranking import origin_parts, source_rank

MINHASH = "minhash"  # output column: the signature, num_perm little-endian uint32 values

KEY_FIELDS = [
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("tier", pa.int32(), nullable=False),  # 0: a document of an earlier output (--against), 1: new
    pa.field("priority", pa.int32(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("origin_name", pa.string(), nullable=False),
    pa.field("origin_number", pa.int64(), nullable=False),
    pa.field("url_key", pa.string()),
    pa.field("text_key", pa.string(), nullable=False),
    pa.field(MINHASH, pa.binary(), nullable=False),
    pa.field("bands", pa.list_(pa.int64())),  # null: no shingles, nothing to compare
]
KEY_SCHEMA = pa.schema(KEY_FIELDS)
KEYS_DDL = (
    "doc_id string, tier int, priority int, source string, origin_name string, origin_number long, "
    f"url_key string, text_key string, {MINHASH} binary, bands array<long>"
)


def signature_bytes(signature: np.ndarray) -> list[bytes]:
    little = signature.astype("<u4", copy=False)
    return [row.tobytes() for row in little]


def signature_array(blobs: Sequence[bytes], num_perm: int) -> np.ndarray:
    if not blobs:
        return np.empty((0, num_perm), np.uint32)
    joined = b"".join(blobs)
    if len(joined) != 4 * num_perm * len(blobs):
        raise ValueError(f"stored signatures are not {num_perm} values each: another dedup.num_perm?")
    return np.frombuffer(joined, dtype="<u4").reshape(len(blobs), num_perm).astype(np.uint32)


class KeyMaker:
    """mapInArrow function: document rows -> KEY_SCHEMA rows. Rows of an earlier output (`earlier`) bring
    their signature in the `minhash` column; it is read, not recomputed."""

    def __init__(self, config: DedupConfig, priority: Sequence[str], earlier: bool):
        self.config = config
        self.priority = tuple(priority)
        self.earlier = earlier

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows:
                yield self.keys(batch)

    def keys(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        c = self.config
        texts = batch.column("text").to_pylist()
        if self.earlier:
            signature = signature_array(batch.column(MINHASH).to_pylist(), c.num_perm)
        else:
            signature = signatures(texts, c.num_perm, c.seed, c.shingle_words)
        has_shingles = ~np.all(signature == EMPTY, axis=1)
        bands = band_keys(signature, c.bands, c.rows_per_band)
        sources = batch.column("source").to_pylist()
        origins = [origin_parts(o) for o in batch.column("origin").to_pylist()]
        urls = batch.column("url").to_pylist()
        n = batch.num_rows
        columns = {
            "doc_id": batch.column("doc_id"),
            "tier": pa.array(np.full(n, 0 if self.earlier else 1, np.int32)),
            "priority": pa.array([source_rank(s, self.priority) for s in sources], pa.int32()),
            "source": batch.column("source"),
            "origin_name": pa.array([o[0] for o in origins], pa.string()),
            "origin_number": pa.array([o[1] for o in origins], pa.int64()),
            "url_key": pa.array([normalize_url(u) for u in urls], pa.string()),
            "text_key": pa.array([text_key(t) for t in texts], pa.string()),
            MINHASH: pa.array(signature_bytes(signature), pa.binary()),
            "bands": pa.array([list(b) if ok else None for b, ok in zip(bands.tolist(), has_shingles)],
                              pa.list_(pa.int64())),
        }
        return pa.RecordBatch.from_arrays([columns[f.name] for f in KEY_SCHEMA], schema=KEY_SCHEMA)
