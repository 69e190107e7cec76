"""Per-document rules of the shard builder, and a plain (Spark-free) reader of stage output folders."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow.parquet as pq

SUCCESS = "_SUCCESS"
DROP_REASONS = ("null_text", "empty_text")  # checked in this order
_VALID_SALT = b"blending-valid-split\0"


class InputError(ValueError):
    """An input folder that is missing, unfinished or lacks the document columns."""


def validation_draw(doc_id: str) -> float:
    """A uniform number in [0, 1) from a stable hash of doc_id (salted, so independent of file buckets)."""
    digest = hashlib.sha1(_VALID_SALT + doc_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_validation(doc_id: str, valid_fraction: float) -> bool:
    return validation_draw(doc_id) < valid_fraction


def drop_reason(text: str | None) -> str | None:
    """Why a document cannot become a training document, or None when it can."""
    if text is None:
        return "null_text"
    if text == "":
        return "empty_text"
    return None


def plan_shards(lengths: Sequence[int], max_tokens: int) -> list[int]:
    """Index of the first document of each shard: documents in order, a shard closes before it would
    pass `max_tokens` (a longer document gets a shard of its own)."""
    starts: list[int] = []
    filled = 0
    for i, n in enumerate(lengths):
        if not starts or (filled > 0 and filled + n > max_tokens):
            starts.append(i)
            filled = 0
        filled += n
    return starts


def stage_parts(folder: str | Path) -> list[Path]:
    """The part files of a finished stage output folder, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such stage output folder")
    if not (folder / SUCCESS).is_file():
        raise InputError(f"{folder} has no {SUCCESS}: the stage that writes it did not finish")
    return sorted(p for p in folder.iterdir() if p.name.startswith("part-") and p.name.endswith(".parquet"))


def iter_texts(folders: Sequence[str | Path], source: str | None = None, text_column: str = "text",
               exclude_valid_fraction: float = 0.0, max_documents: int | None = None) -> Iterator[str]:
    """Texts of the documents in `folders` (files sorted, rows in order), optionally of one source and
    without the documents the shard builder puts in the validation split."""
    yielded = 0
    for folder in folders:
        for part in stage_parts(folder):
            columns = ["doc_id", "source", text_column]
            for batch in pq.ParquetFile(part).iter_batches(columns=columns, batch_size=4096):
                for doc_id, src, text in zip(*(batch.column(c).to_pylist() for c in columns), strict=True):
                    if source is not None and src != source:
                        continue
                    if drop_reason(text) or (exclude_valid_fraction and is_validation(doc_id, exclude_valid_fraction)):
                        continue
                    yield text
                    yielded += 1
                    if max_documents is not None and yielded >= max_documents:
                        return


def folder_exists(folder: str | Path) -> bool:
    return os.path.isdir(folder)
