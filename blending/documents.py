"""Per-document rules of the shard builder, and the texts of stage folders read without Spark (the folder
protocol itself: blending/stage_folder.py)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from blending.stage_folder import SUCCESS, InputError, list_parts, read_success, resolve

DROP_REASONS = ("null_text", "empty_text")  # checked in this order
_VALID_SALT = b"blending-valid-split\0"


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


def documents_folder(folder: str, source: str, last_stage: str) -> str:
    """The stage folder to read for `source`: `folder` itself, or, for the folder of a `dataprep run`,
    the last stage's folder in it (FOLDER/<source>/<last stage> when sources ran apart, else
    FOLDER/<last stage>; a path that does not exist when the run has neither, so the source counts as
    missing). Any other folder is returned as given (and refused when read)."""
    if "://" in folder:  # object storage has no folders to look into: the stage folder, or a run's
        candidates = (folder, f"{folder}/{source}/{last_stage}", f"{folder}/{last_stage}")
        return next((c for c in candidates if _finished(c)), folder)
    if not os.path.isdir(folder) or os.path.isfile(os.path.join(folder, SUCCESS)):
        return folder
    candidates = (os.path.join(folder, source, last_stage), os.path.join(folder, last_stage))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, SUCCESS)):
            return candidate
    run_folder = any(Path(folder).glob(f"*/{SUCCESS}")) or any(Path(folder).glob(f"*/*/{SUCCESS}"))
    return candidates[1] if run_folder else folder


def _finished(folder: str) -> bool:
    fs, root = resolve(folder)
    return fs.get_file_info(f"{root}/{SUCCESS}").is_file


def check_curated(folder: str, last_stage: str, allow_partial: bool) -> None:
    """Refuse a folder that is not the output of the pipeline's last stage: its documents have not been
    through every stage (un-curated text must not reach shards by accident)."""
    stage = json.loads(read_success(folder)).get("stage")
    if stage != last_stage and not allow_partial:
        raise InputError(f"{folder} is the output of the {stage} stage, not of {last_stage}, the pipeline's last: "
                         "its documents have not been through every stage (--allow-partial blends it anyway)")


def iter_texts(folders: Sequence[str | Path], source: str | None = None, text_column: str = "text",
               exclude_valid_fraction: float = 0.0, max_documents: int | None = None) -> Iterator[str]:
    """Texts of the documents in `folders` (files sorted, rows in order), optionally of one source and
    without the documents the shard builder puts in the validation split."""
    yielded = 0
    for folder in folders:
        for part in list_parts(str(folder)):
            columns = ["doc_id", "source", text_column]
            fs, path = resolve(part)
            with fs.open_input_file(path) as f:
                for batch in pq.ParquetFile(f).iter_batches(columns=columns, batch_size=4096):
                    for doc_id, src, text in zip(*(batch.column(c).to_pylist() for c in columns), strict=True):
                        if source is not None and src != source:
                            continue
                        if drop_reason(text) or (exclude_valid_fraction and is_validation(doc_id, exclude_valid_fraction)):
                            continue
                        yield text
                        yielded += 1
                        if max_documents is not None and yielded >= max_documents:
                            return

