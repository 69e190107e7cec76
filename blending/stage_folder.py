"""The stage folder protocol, without Spark: what a finished folder holds, how it is recognised,
recorded, reused or refused, and put into place. The curation service writes these folders, the shard
builder and the lineage tools read them; this module is the one both sides use. docs/contracts.md
describes the folder.

    OUT/part-00000.parquet ...        the kept rows, bucketed by a stable hash of doc_id, sorted by doc_id
    OUT/dropped_index/part-*.parquet  doc_id, origin, drop_reason of every dropped row (always)
    OUT/dropped/part-*.parquet        the dropped rows in full (--keep-dropped)
    OUT/stats.json                    the accounting
    OUT/_SUCCESS                      JSON: stage, code_version, inputs, config_hash; written last

A local folder is written as OUT.tmp-* and renamed into place once _SUCCESS is in it. Object stores
(any URI but file://) cannot rename a folder, so there a folder is *listed*: its files are written under
OUT/_attempt-<id>/ (the same layout), then OUT/_SUCCESS, one PUT, holds the record plus `files`, each
file's name, stored path and size. Readers read only what `files` lists; a _SUCCESS without `files` is a
local folder, read as it lies. A rerun's _SUCCESS replaces the old one in one PUT, after which the files
of every other attempt (the replaced one, a killed run's) are deleted.

A stage that reads a folder records it by its _SUCCESS (stage, code version, config hash and the sha256 of
the record, which names that stage's own inputs in turn; for a listed folder the record without `files`,
as a local folder holds it) and its part files' names and sizes, not by its path: a folder on S3 and its
local twin are recorded alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow.fs as pafs

from blending.atomic import publish_folder

SUCCESS = "_SUCCESS"
STATS = "stats.json"
DROPPED_DIR = "dropped"
DROPPED_INDEX_DIR = "dropped_index"
DROPPED_INDEX_COLUMNS = ("doc_id", "origin", "drop_reason")
LISTING = "files"  # the key of a listed folder's _SUCCESS that names its files
ATTEMPT_PREFIX = "_attempt-"
COPY_CHUNK = 1 << 23
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


def exists(uri: str) -> bool:
    """Whether a folder (or any object under its prefix) is there."""
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def as_uri(folder: str, path: str) -> str:
    """`path` (from `folder`'s filesystem) written the way `folder` was: a URI stays a URI."""
    return path if "://" not in folder else folder.split("://")[0] + "://" + path


def part_name(bucket: int) -> str:
    return f"part-{bucket:05d}.parquet"


def is_listed(uri: str) -> bool:
    """Whether a folder at `uri` is written listed (object storage) rather than renamed (local disk)."""
    return "://" in uri and not uri.startswith("file://")


def _raw_success(folder: str) -> bytes:
    fs, root = resolve(folder)
    info = fs.get_file_info(f"{root}/{SUCCESS}")
    if info.type == pafs.FileType.NotFound:
        if fs.get_file_info(root).type == pafs.FileType.NotFound:
            raise InputError(f"{folder}: no such stage output folder")
        raise InputError(f"{folder} has no {SUCCESS}: the stage that writes it did not finish")
    with fs.open_input_stream(info.path) as f:
        return f.read()


def _success_and_listing(folder: str) -> tuple[bytes, dict | None]:
    """(the record as a local folder's _SUCCESS holds it, the `files` of a listed folder or None)."""
    raw = _raw_success(folder)
    try:
        record = json.loads(raw)
    except ValueError:
        return raw, None  # not a record: callers that parse it say so
    if not isinstance(record, dict) or LISTING not in record:
        return raw, None
    listing = record.pop(LISTING)
    return success_bytes(record), listing


def success_bytes(record: dict) -> bytes:
    """A _SUCCESS file's bytes for `record`."""
    return (json.dumps(record, indent=2) + "\n").encode()


def read_success(folder: str) -> bytes:
    """The _SUCCESS record of a finished folder (a listed folder's without its `files`); InputError when
    there is none."""
    return _success_and_listing(folder)[0]


def read_listing(folder: str) -> dict[str, dict] | None:
    """A listed folder's files: name -> {"path": stored path relative to the folder, "size"}; None for a
    local folder."""
    return _success_and_listing(folder)[1]


def file_uri(folder: str, name: str, listing: dict | None = None) -> str | None:
    """Where a folder's file `name` (e.g. "stats.json") is stored; None when a listed folder lacks it."""
    fs, root = resolve(folder)
    if listing is None:
        return as_uri(folder, f"{root}/{name}")
    entry = listing.get(name)
    return None if entry is None else as_uri(folder, f"{root}/{entry['path']}")


def read_json(folder: str, name: str) -> dict | None:
    """A JSON file of a folder (stats.json, a stage's own record) as a dict; None when there is none."""
    try:
        listing = read_listing(folder)
    except InputError:
        listing = None  # no _SUCCESS (yet): the file where it lies
    uri = file_uri(folder, name, listing)
    if uri is None:
        return None
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
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


def _is_part(name: str) -> bool:
    return name.startswith("part-") and name.endswith(".parquet") and "/" not in name


def _parts(folder: str) -> list[tuple[str, str, int]]:
    """(name, path or URI, size) of a finished folder's part files, sorted by name."""
    listing = read_listing(folder)
    if listing is not None:
        return [(name, file_uri(folder, name, listing), entry["size"])
                for name, entry in sorted(listing.items()) if _is_part(name)]
    fs, root = resolve(folder)
    infos = fs.get_file_info(pafs.FileSelector(root))
    return sorted((i.base_name, as_uri(folder, i.path), i.size) for i in infos if _is_part(i.base_name))


def list_parts(folder: str) -> list[str]:
    """The part files of a finished folder, sorted (paths, or URIs for a URI folder)."""
    return [uri for _, uri, _ in _parts(folder)]


def folder_record(folder: str) -> dict:
    """How a stage that reads `folder` records it in its own _SUCCESS (see the module docstring)."""
    success = read_success(folder)
    record = json.loads(success)
    return {
        "stage": record.get("stage"), "code_version": record.get("code_version"),
        "config_hash": record.get("config_hash"), "success_sha256": hashlib.sha256(success).hexdigest(),
        "parts": [{"name": name, "size": size} for name, _, size in _parts(folder)],
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
    if is_listed(out) and fs.get_file_info(f"{root}/{SUCCESS}").type == pafs.FileType.NotFound:
        return False  # only a killed run's attempt files: the next commit removes them
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


def working_folder(out: str, local_work_dir: str | None = None) -> str:
    """Where an output is written before it is published: a fresh attempt folder inside a listed `out`;
    `local_work_dir` or a new OUT.tmp-* beside a local one."""
    if is_listed(out):
        return f"{out.rstrip('/')}/{ATTEMPT_PREFIX}{uuid.uuid4().hex[:12]}"
    return local_work_dir or temporary_folder(out)


def publish(tmp: str, out: str, record: dict) -> None:
    """Finish the folder written in `tmp` (from working_folder) with the _SUCCESS `record` and publish it as
    `out`, replacing what is there only once it is complete."""
    if is_listed(out):
        commit_listed(tmp, out, record)
        return
    write_bytes(f"{tmp}/{SUCCESS}", success_bytes(record))
    swap_into_place(tmp, out)


def swap_into_place(tmp: str, out: str) -> None:
    """Publish the finished local folder `tmp` as `out`, replacing what is there: synced to disk and
    exchanged atomically with the old one (blending/atomic.py), so a crash leaves the old folder or the new
    one."""
    _, root = resolve(out)
    _, tmp_root = resolve(tmp)
    publish_folder(tmp_root, root)


def commit_listed(attempt: str, out: str, record: dict) -> None:
    """Publish the attempt folder `attempt` inside `out` by writing OUT/_SUCCESS (one PUT) that lists its
    files, then delete every file of `out` it does not list."""
    fs, root = resolve(out)
    _, attempt_root = resolve(attempt)
    infos = fs.get_file_info(pafs.FileSelector(attempt_root, recursive=True))
    listing = {}
    for info in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
        name = info.path[len(attempt_root) + 1:]
        listing[name] = {"path": info.path[len(root) + 1:], "size": info.size}
    write_bytes(f"{out.rstrip('/')}/{SUCCESS}", success_bytes({**record, LISTING: listing}))
    remove_unlisted(out)


def upload_folder(local: str | Path, out: str) -> None:
    """Publish a complete local folder, its _SUCCESS record included, as the listed folder `out`: every
    other file copied into a new attempt folder, then the listing _SUCCESS."""
    local = Path(local)
    record = _json_object((local / SUCCESS).read_bytes(), str(local / SUCCESS))
    attempt = working_folder(out)
    fs, attempt_root = resolve(attempt)
    for path in sorted(p for p in local.rglob("*") if p.is_file() and p != local / SUCCESS):
        upload_file(path, f"{attempt_root}/{path.relative_to(local).as_posix()}", fs)
    commit_listed(attempt, out, record)


def upload_file(path: str | Path, dest: str, fs: pafs.FileSystem) -> None:
    with pafs.LocalFileSystem().open_input_stream(str(path)) as source, fs.open_output_stream(dest) as sink:
        copy_stream(source, sink)


def copy_stream(source, sink, each: Callable | None = None) -> int:
    """Copy a pyarrow input stream into `sink` (any writable), `each(chunk)` on every chunk; the bytes copied.
    Chunks are pyarrow buffers, from pyarrow's own allocator: large Python bytes objects, once freed, stay
    in glibc's heap and are handed unzeroed to the next large allocation (fastText's matrices among them)."""
    copied = 0
    while (chunk := source.read_buffer(COPY_CHUNK)).size:
        if each:
            each(chunk)
        sink.write(chunk)
        copied += chunk.size
    return copied


def remove_unlisted(out: str) -> None:
    """Delete what a listed folder holds besides _SUCCESS and the files it lists: the attempts it replaced
    and those of killed runs. Nothing when the folder is not finished (a running attempt may be writing)."""
    if not is_listed(out):
        return
    try:
        listing = read_listing(out)
    except InputError:
        return
    if listing is None:
        return  # a folder copied up as it lay on disk: every file of it is its own
    fs, root = resolve(out)
    listed = {entry["path"] for entry in listing.values()} | {SUCCESS}
    keep_dirs = {path.split("/")[0] for path in listed}
    for info in fs.get_file_info(pafs.FileSelector(root)):
        name = info.path[len(root) + 1:]
        if info.type == pafs.FileType.Directory and name not in keep_dirs:
            fs.delete_dir(info.path)
        elif info.type == pafs.FileType.File and name not in listed:
            fs.delete_file(info.path)


def write_bytes(path: str, data: bytes) -> None:
    fs, p = resolve(path)
    with fs.open_output_stream(p) as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode())
