"""Shard files whose sha256 this machine has checked: training never reads one it has not.

Hashing a blend costs a pass over every byte (about 1.5 s per GB on one core), too much to repeat at every
start of a run that resumes many times, and a record of what was checked makes it free the second time.
The record is this machine's (a file under the user's cache folder, `MTNLG_VERIFIED_RECORD` to choose
another): for each file its device, inode, size, modification and change times, with the sha256 they were
checked against. Any write to a file changes its change time (even one that restores its modification
time), and a copy is another inode, so a file that changed since it was checked is hashed again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from blending.hashing import sha256_file
from blending.manifest import Manifest, ManifestError

RECORD_VERSION = 1


@dataclass
class Verification:
    hashed: int = 0  # files whose sha256 was computed now
    recorded: int = 0  # files unchanged since this machine checked them
    hashed_bytes: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (f"shards verified: {self.hashed} file(s) hashed ({self.hashed_bytes / 1e6:,.1f} MB, "
                f"{self.seconds:.1f} s), {self.recorded} unchanged since this machine checked them")


def record_path() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("MTNLG_VERIFIED_RECORD") or cache / "mtnlg" / "verified-files.json")


def manifest_files(manifest: Manifest) -> list[tuple[str, str]]:
    """(path, sha256) of every file training reads: the tokenizer and each shard's .bin and .idx."""
    files = [(str(manifest.tokenizer_path), manifest.tokenizer_sha256)]
    for _, shard in manifest.shards("train") + manifest.shards("valid"):
        files += [(shard.bin_path, shard.bin_sha256), (shard.idx_path, shard.idx_sha256)]
    return files


def verify_manifest(manifest: Manifest, force: bool = False, record: Path | None = None,
                    hashed: bool = False) -> Verification:
    """Check the sha256 of every file of `manifest` that this machine has not checked since it last
    changed (all of them with `force`); ManifestError names the first that differs. `hashed`: the caller
    has just checked every hash (load_manifest(verify_hashes=True)): record them without hashing again."""
    return verify_files(manifest_files(manifest), force, record or record_path(), hashed)


def verify_files(files: list[tuple[str, str]], force: bool, record: Path, hashed: bool = False) -> Verification:
    started = time.perf_counter()
    result = Verification()
    with _locked(record):
        checked = _read(record)
        for path, sha256 in files:
            key = _identity(path)
            if not force and checked.get(key) == sha256:
                result.recorded += 1
                continue
            if not hashed and sha256_file(path) != sha256:
                raise ManifestError(f"{path}: sha256 differs from the manifest (the file changed or is corrupt)")
            checked[key] = sha256
            result.hashed += 1
            result.hashed_bytes += os.path.getsize(path)
        if result.hashed:
            _write(record, checked)
    result.seconds = time.perf_counter() - started
    return result


def _identity(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


def _read(record: Path) -> dict[str, str]:
    try:
        content = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: everything is hashed again
    if not isinstance(content, dict) or content.get("version") != RECORD_VERSION:
        return {}
    files = content.get("files")
    return dict(files) if isinstance(files, dict) else {}


def _write(record: Path, checked: dict[str, str]) -> None:
    live = {key: sha for key, sha in checked.items() if os.path.exists(key.split("|", 1)[0])}
    tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": RECORD_VERSION, "files": live}, indent=0) + "\n")
    os.replace(tmp, record)


@contextlib.contextmanager
def _locked(record: Path) -> Iterator[None]:
    """One process at a time reads, hashes and records (the ranks of a node start together)."""
    record.parent.mkdir(parents=True, exist_ok=True)
    with open(record.with_name(record.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
