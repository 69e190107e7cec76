"""`python -m blending fetch MANIFEST --to DIR`: a blend copied to local disk, where the trainer reads it.

MANIFEST is the manifest.json (or the folder) of a build on object storage (a listed folder:
blending/stage_folder.py) or on another file system. Every file the manifest lists (tokenizer, each
shard's .bin, .idx and document index) is streamed into DIR's partial folder `.DIR.partial` with its
sha256 computed on the way and compared with the manifest's; the build's stats.json and _SUCCESS come along
(the manifest holds no hash of them). Only when every file matches is the manifest written and the partial
folder renamed to DIR (blending/atomic.py), so a folder named DIR is always a complete, checked blend. A
fetch that stops (killed, or a file that does not match) leaves the partial folder: the next one keeps the
files in it, and in an older DIR, whose size and sha256 match, and downloads only the rest. The hashes are
recorded as checked on this machine (blending/verified.py): the trainer does not hash them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from blending.atomic import publish_folder
from blending.hashing import sha256_file
from blending.manifest import MANIFEST_FILE, SPLITS, ManifestError, load_manifest
from blending.stage_folder import (
    STATS,
    SUCCESS,
    InputError,
    copy_stream,
    file_uri,
    read_listing,
    read_success,
    resolve,
)
from blending.verified import verify_manifest


class FetchError(ValueError):
    """A file of the blend is missing at the source or does not match the manifest."""


@dataclass
class Fetched:
    downloaded: int = 0  # files read from the source
    kept: int = 0  # files already here with the manifest's size and sha256
    bytes: int = 0  # downloaded bytes

    def line(self, folder: Path) -> str:
        return (f"fetched {folder}: {self.downloaded} file(s) downloaded ({self.bytes / 1e6:,.1f} MB), "
                f"{self.kept} already here with the right sha256")


def fetch(manifest: str, to: str | Path, log=print) -> Path:
    """Copy the blend of `manifest` to the folder `to`, every file checked; the local manifest's path."""
    source = manifest.rstrip("/")
    if source.endswith(f"/{MANIFEST_FILE}") or source == MANIFEST_FILE:
        source = source[: -len(MANIFEST_FILE)].rstrip("/") or "."
    try:
        listing = read_listing(source)
    except InputError:
        listing = None  # a manifest without a build record beside it (written by other tools): files as they lie
    final = Path(to).absolute()
    partial = final.with_name(f".{final.name}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    for name in (MANIFEST_FILE, STATS, SUCCESS):  # an interrupted fetch's, of this blend or another
        (partial / name).unlink(missing_ok=True)

    raw = _read(_uri(source, MANIFEST_FILE, listing))
    try:
        manifest_json = json.loads(raw)
    except ValueError as error:
        raise FetchError(f"{source}/{MANIFEST_FILE}: not JSON ({error})") from None
    fetched = Fetched()
    files = _listed_files(manifest_json)
    for name, size, sha256 in files:
        _fetch_file(_uri(source, name, listing), name, size, sha256, partial, final, fetched)
    for name in (STATS,):  # the build's accounting: copied as it is
        if listing is None or name in listing:
            uri = _uri(source, name, listing)
            fs, path = resolve(uri)
            if fs.get_file_info(path).is_file:
                (partial / name).write_bytes(_read(uri))
    try:
        (partial / SUCCESS).write_bytes(read_success(source))
    except InputError:
        pass
    _remove_others(partial, {name for name, _, _ in files} | {STATS, SUCCESS, MANIFEST_FILE})
    (partial / MANIFEST_FILE).write_bytes(raw)  # last: it names every file above
    try:
        load_manifest(partial / MANIFEST_FILE)  # what the trainer checks at start: sizes, index headers
    except ManifestError as error:
        raise FetchError(f"{error}; nothing published") from None
    publish_folder(partial, final)  # every file synced to disk first
    verify_manifest(load_manifest(final / MANIFEST_FILE), hashed=True)  # the hashes just checked, recorded
    log(fetched.line(final))
    return final / MANIFEST_FILE


def _listed_files(manifest: dict) -> list[tuple[str, int | None, str]]:
    """(relative path, size or None, sha256) of every file the manifest lists."""
    try:
        files = [(manifest["tokenizer"]["file"], None, manifest["tokenizer"]["sha256"])]
        for entry in manifest["sources"].values():
            for split in SPLITS:
                for shard in entry[split]:
                    for kind, suffix in (("bin", ".bin"), ("idx", ".idx"), ("docs", ".docs.parquet")):
                        if kind in shard:
                            files.append((shard["prefix"] + suffix, shard[kind]["bytes"], shard[kind]["sha256"]))
    except (KeyError, TypeError, AttributeError) as error:
        raise FetchError(f"malformed manifest ({type(error).__name__}: {error})") from None
    for name, _, _ in files:
        if os.path.isabs(name) or ".." in Path(name).parts:
            raise FetchError(f"the manifest lists {name!r}: not a path inside its folder")
    return files


def _fetch_file(uri: str, name: str, size: int | None, sha256: str, partial: Path, final: Path,
                fetched: Fetched) -> None:
    target = partial / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if _matches(target, size, sha256):
        fetched.kept += 1
        return
    if _matches(final / name, size, sha256):  # an earlier fetch's, unchanged
        shutil.copyfile(final / name, target)
        fetched.kept += 1
        return
    download = target.with_name(target.name + ".download")
    digest = hashlib.sha256()
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as source, open(download, "wb") as out:
            written = copy_stream(source, out, digest.update)
    except FileNotFoundError:
        download.unlink(missing_ok=True)
        raise FetchError(f"{uri}: missing (the manifest lists it)") from None
    if digest.hexdigest() != sha256 or (size is not None and written != size):
        download.unlink()
        raise FetchError(f"{uri}: sha256 {digest.hexdigest()[:16]}... ({written} bytes) does not match the "
                         f"manifest's {sha256[:16]}...; nothing published")
    os.replace(download, target)
    fetched.downloaded += 1
    fetched.bytes += written


def _remove_others(partial: Path, names: set[str]) -> None:
    """What an earlier fetch of another blend left in the partial folder, and unfinished downloads."""
    for path in sorted(partial.rglob("*"), reverse=True):
        if path.is_file() and path.relative_to(partial).as_posix() not in names:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _matches(path: Path, size: int | None, sha256: str) -> bool:
    return path.is_file() and (size is None or path.stat().st_size == size) and sha256_file(path) == sha256


def _uri(folder: str, name: str, listing: dict | None) -> str:
    uri = file_uri(folder, name, listing)
    if uri is None:
        raise FetchError(f"{folder}: its {SUCCESS} does not list {name}, which the manifest names")
    return uri


def _read(uri: str) -> bytes:
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise FetchError(f"{uri}: no such file") from None
