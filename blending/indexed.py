"""Megatron indexed datasets (`.bin` + `.idx`, `MMIDIDX` version 1), written and checked without megatron.

Layout of the `.idx` (megatron/core/datasets/indexed_dataset.py, little-endian):
    b"MMIDIDX\\x00\\x00", version <Q = 1, dtype code <B,
    sequence count <Q, document count <Q (= documents + 1),
    sequence lengths int32[sequences], sequence byte pointers int64[sequences],
    document indices int64[documents + 1] (0, then the sequence index after each document).
One sequence per document here, as Megatron's preprocess_data.py writes GPT data.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
# megatron.core.datasets.indexed_dataset.DType
DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
               np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}
_FIXED_HEADER = struct.calcsize("<9sQBQQ")  # 34 bytes


@dataclass(frozen=True)
class WrittenFile:
    bytes: int
    sha256: str


@dataclass(frozen=True)
class WrittenShard:
    documents: int
    tokens: int
    bin: WrittenFile
    idx: WrittenFile
    docs: WrittenFile | None = None  # the document index (blending/docindex.py), when written


class IndexedDatasetWriter:
    """Streams documents into `PREFIX.bin`, then writes `PREFIX.idx`; hashes both on the way."""

    def __init__(self, prefix: str | Path, dtype: np.dtype) -> None:
        self.prefix = str(prefix)
        self.dtype = np.dtype(dtype)
        self._bin = open(self.prefix + ".bin", "wb")
        self._bin_hash = hashlib.sha256()
        self._lengths: list[np.ndarray] = []
        self._bin_bytes = 0

    def add_documents(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Append documents given as one flat token array and their lengths (EOD included)."""
        data = np.ascontiguousarray(tokens, dtype=self.dtype).tobytes()
        self._bin.write(data)
        self._bin_hash.update(data)
        self._bin_bytes += len(data)
        self._lengths.append(np.asarray(lengths, dtype=np.int32))

    def close(self) -> WrittenShard:
        self._bin.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int32)
        index = index_bytes(lengths, self.dtype)
        with open(self.prefix + ".idx", "wb") as f:
            f.write(index)
        return WrittenShard(
            documents=int(lengths.size),
            tokens=int(lengths.sum(dtype=np.int64)),
            bin=WrittenFile(self._bin_bytes, self._bin_hash.hexdigest()),
            idx=WrittenFile(len(index), hashlib.sha256(index).hexdigest()),
        )


def index_bytes(lengths: np.ndarray, dtype: np.dtype) -> bytes:
    """The whole `.idx` file for documents of these lengths, one sequence per document."""
    count = int(lengths.size)
    pointers = np.zeros(count, dtype=np.int64)
    if count:
        np.cumsum(lengths[:-1].astype(np.int64) * np.dtype(dtype).itemsize, out=pointers[1:])
    document_indices = np.arange(count + 1, dtype=np.int64)
    header = struct.pack("<9sQBQQ", INDEX_HEADER, INDEX_VERSION, DTYPE_CODES[np.dtype(dtype)], count, count + 1)
    return b"".join([header, lengths.astype("<i4").tobytes(), pointers.astype("<i8").tobytes(),
                     document_indices.astype("<i8").tobytes()])


@dataclass(frozen=True)
class IndexSummary:
    dtype: np.dtype
    sequences: int
    documents: int
    tokens: int


class IndexFormatError(ValueError):
    pass


def read_index_header(idx_path: str | Path) -> IndexSummary:
    """Header of an `.idx` (tokens left at -1), after checking the file has exactly the size it promises."""
    path = Path(idx_path)
    with open(path, "rb") as f:
        head = f.read(_FIXED_HEADER)
    if len(head) < _FIXED_HEADER:
        raise IndexFormatError(f"{idx_path}: {len(head)} bytes, shorter than the {_FIXED_HEADER}-byte header")
    magic, version, code, sequences, doc_count = struct.unpack("<9sQBQQ", head)
    if magic != INDEX_HEADER:
        raise IndexFormatError(f"{idx_path}: not an MMIDIDX index")
    if version != INDEX_VERSION:
        raise IndexFormatError(f"{idx_path}: version {version}, expected {INDEX_VERSION}")
    if code not in CODE_DTYPES:
        raise IndexFormatError(f"{idx_path}: unknown dtype code {code}")
    expected = _FIXED_HEADER + sequences * (4 + 8) + doc_count * 8
    actual = path.stat().st_size
    if actual != expected:
        raise IndexFormatError(f"{idx_path}: {actual} bytes where its header promises {expected} (truncated?)")
    return IndexSummary(CODE_DTYPES[code], int(sequences), int(doc_count) - 1, -1)


def read_index_summary(idx_path: str | Path) -> IndexSummary:
    """Header and token total of an `.idx`; raises IndexFormatError when it is not a complete MMIDIDX v1 file."""
    header = read_index_header(idx_path)
    lengths = np.fromfile(idx_path, dtype="<i4", count=header.sequences, offset=_FIXED_HEADER)
    return IndexSummary(header.dtype, header.sequences, header.documents, int(lengths.sum(dtype=np.int64)))


def read_document(prefix: str | Path, doc: int) -> np.ndarray:
    """The tokens of document `doc` of `PREFIX.bin` (one sequence per document, as written here)."""
    idx = str(prefix) + ".idx"
    header = read_index_header(idx)
    if not 0 <= doc < header.sequences:
        raise IndexError(f"{prefix}: document {doc} outside [0, {header.sequences})")
    length = int(np.fromfile(idx, dtype="<i4", count=1, offset=_FIXED_HEADER + 4 * doc)[0])
    pointer = int(np.fromfile(idx, dtype="<i8", count=1, offset=_FIXED_HEADER + 4 * header.sequences + 8 * doc)[0])
    return np.fromfile(str(prefix) + ".bin", dtype=header.dtype, count=length, offset=pointer)
