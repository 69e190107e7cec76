"""The stage folder protocol, without Spark: what a finished folder holds, how it is recognised,
recorded, reused or refused, and put into place. The curation service writes these folders, the shard
builder and the lineage tools read them; this module is the one both sides use. docs/contracts.md
describes the folder.

    OUT/part-00000.parquet ...        the kept rows, bucketed by a stable hash of doc_id, sorted by doc_id
    OUT/dropped_index/part-*.parquet  doc_id, origin, drop_reason of every dropped row (always)
    OUT/dropped/part-*.parquet        the dropped rows in full (--keep-dropped)
    OUT/stats.json                    the accounting
    OUT/_SUCCESS                      JSON: stage, code_version, inputs, config_hash; written last

A folder is written as OUT.tmp-* and renamed into place once _SUCCESS is in it. A stage that reads a
folder records it by its _SUCCESS (stage, code version, config hash and the sha256 of the whole record,
which names that stage's own inputs in turn) and its part files' names and sizes, not by its path.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from blending.atomic import publish_folder

SUCCESS = "_SUCCESS"
STATS = "stats.json"
DROPPED_DIR = "dropped"
DROPPED_INDEX_DIR = "dropped_index"
DROPPED_INDEX_COLUMNS = ("doc_id", "origin", "drop_reason")
# The stage whose folders hold curated documents, what the shard builder reads by default. The curation
# pipeline's last stage must carry this name (a test checks it), so readers need not import the pipeline.
FINAL_STAGE = "decontaminate"


class OutputExistsError(RuntimeError):
    """The output folder holds something made from other inputs or config; --overwrite replaces it."""


class InputError(ValueError):
    """Inputs that cannot make an output: a missing or unfinished folder, files that would collide, a
    document twice, a folder from the wrong stage."""


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path or a URI (s3://, hdfs://, file://)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def as_uri(folder: str, path: str) -> str:
    """`path` (from `folder`'s filesystem) written the way `folder` was: a URI stays a URI."""
    return path if "://" not in folder else folder.split("://")[0] + "://" + path


def part_name(bucket: int) -> str:
    return f"part-{bucket:05d}.parquet"


def read_success(folder: str) -> bytes:
    """The raw _SUCCESS record of a finished folder; InputError when there is none."""
    fs, root = resolve(folder)
    info = fs.get_file_info(f"{root}/{SUCCESS}")
    if info.type == pafs.FileType.NotFound:
        if fs.get_file_info(root).type == pafs.FileType.NotFound:
            raise InputError(f"{folder}: no such stage output folder")
        raise InputError(f"{folder} has no {SUCCESS}: the stage that writes it did not finish")
    with fs.open_input_stream(info.path) as f:
        return f.read()


def read_json(folder: str, name: str) -> dict | None:
    """A JSON file of a folder (stats.json, a stage's own record) as a dict; None when there is none."""
    fs, root = resolve(folder)
    try:
        with fs.open_input_stream(f"{root}/{name}") as f:
            return _json_object(f.read(), f"{folder}/{name}")
    except FileNotFoundError:
        return None


def read_json_file(path: str | Path) -> dict:
    """A local JSON file that must hold an object (stats.json); InputError naming it otherwise."""
    return _json_object(Path(path).read_bytes(), str(path))


def _json_object(data: bytes, where: str) -> dict:
    try:
        value = json.loads(data)
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        raise InputError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def read_stats(folder: str) -> dict | None:
    return read_json(folder, STATS)


def _part_infos(folder: str) -> list[pafs.FileInfo]:
    fs, root = resolve(folder)
    infos = fs.get_file_info(pafs.FileSelector(root))
    return sorted((i for i in infos if i.base_name.startswith("part-") and i.base_name.endswith(".parquet")),
                  key=lambda i: i.base_name)


def list_parts(folder: str) -> list[str]:
    """The part files of a finished folder, sorted (paths, or URIs for a URI folder)."""
    read_success(folder)
    return [as_uri(folder, i.path) for i in _part_infos(folder)]


def folder_record(folder: str) -> dict:
    """How a stage that reads `folder` records it in its own _SUCCESS (see the module docstring)."""
    success = read_success(folder)
    record = json.loads(success)
    parts = _part_infos(folder)
    return {
        "stage": record.get("stage"), "code_version": record.get("code_version"),
        "config_hash": record.get("config_hash"), "success_sha256": hashlib.sha256(success).hexdigest(),
        "parts": [{"name": i.base_name, "size": i.size} for i in parts],
    }


def success_record(stage: str, code_version: str, inputs: list[dict], config_hash: str) -> dict:
    return {"stage": stage, "code_version": code_version, "inputs": inputs, "config_hash": config_hash}


def reusable(out: str, record: dict, overwrite: bool = False, replace_changed: bool = False) -> bool:
    """True when `out` is finished with exactly `record`. False when there is nothing, or when it is to
    be replaced (`overwrite`: whatever it holds; `replace_changed`: a finished output of other inputs or
    config). OutputExistsError otherwise."""
    fs, root = resolve(out)
    if fs.get_file_info(root).type == pafs.FileType.NotFound or overwrite:
        return False
    try:
        existing = json.loads(read_success(out))
    except InputError:
        raise OutputExistsError(f"{out} exists and is not a finished output; use --overwrite to replace it") from None
    if existing == record:
        return True
    if replace_changed:
        return False
    differs = [k for k in record if existing.get(k) != record.get(k)]
    raise OutputExistsError(f"{out} holds a {existing.get('stage')} output that differs in {', '.join(differs)}; "
                            "use --overwrite to replace it")


def temporary_folder(out: str) -> str:
    """Where an output is written before it is renamed to `out` (same parent, so the rename is atomic)."""
    fs, root = resolve(out)
    return as_uri(out, f"{root}.tmp-{uuid.uuid4().hex[:8]}")


def swap_into_place(tmp: str, out: str) -> None:
    """Publish the finished `tmp` as `out`, replacing what is there: a local folder synced to disk and
    exchanged atomically with the old one (blending/atomic.py), so a crash leaves the old folder or the new
    one; other file systems by two moves."""
    fs, root = resolve(out)
    _, tmp_root = resolve(tmp)
    if isinstance(fs, pafs.LocalFileSystem):
        publish_folder(tmp_root, root)
        return
    old = None
    if fs.get_file_info(root).type != pafs.FileType.NotFound:
        old = f"{root}.old-{uuid.uuid4().hex[:8]}"
        fs.move(root, old)
    fs.move(tmp_root, root)
    if old:
        fs.delete_dir(old)


def write_text(path: str, text: str) -> None:
    fs, p = resolve(path)
    with fs.open_output_stream(p) as f:
        f.write(text.encode())
