"""Writes a reader can rely on: a file or folder appears complete under its name, or not at all.

Everything is written under a temporary name in the destination's own folder (a rename never crosses
file systems), flushed to disk with its folder, then renamed over the destination. A folder that
replaces another is exchanged with it in one atomic rename (Linux renameat2 RENAME_EXCHANGE); where the
file system cannot, the old one is moved aside and kept until the new one is in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a folder's fsync makes renames in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under `folder`, the folder itself last."""
    for parent, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_path(Path(parent) / name)
        fsync_path(Path(parent))


def temporary_name(final: Path, kind: str) -> Path:
    """A fresh hidden name beside `final` (created with the umask's permissions, unlike tempfile's 0600)."""
    return final.with_name(f".{final.name}.{kind}-{secrets.token_hex(4)}")


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def copy_file_atomic(source: str | Path, path: str | Path) -> Path:
    return write_bytes_atomic(path, Path(source).read_bytes())


def publish_folder(tmp: str | Path, final: str | Path) -> Path:
    """Rename the complete folder `tmp` to `final` (same parent). An existing `final` is exchanged with
    `tmp` atomically, then deleted; without the exchange it is moved aside first and deleted only once
    `tmp` is in its place (a crash in between leaves it as `.NAME.old-*`)."""
    tmp, final = Path(tmp), Path(final)
    fsync_tree(tmp)
    if final.exists() and _exchange(tmp, final):
        fsync_path(final.parent)
        shutil.rmtree(tmp)  # the old folder, now under the temporary name
        return final
    old = None
    if final.exists():
        old = temporary_name(final, "old")
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_path(final.parent)
    if old is not None:
        shutil.rmtree(old)
    return final


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic rename; False where the C library or the file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:  # a C library without renameat2
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, f"cannot exchange {a} and {b}: {os.strerror(code)}")


@contextlib.contextmanager
def folder_written_atomically(final: str | Path) -> Iterator[Path]:
    """A temporary folder beside `final` to write into; published as `final` when the block ends without
    an error, deleted otherwise."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final, "tmp")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_folder(tmp, final)
