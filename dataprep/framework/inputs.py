"""Input files of a stage: local paths and globs, URIs, and Common Crawl path listings.

`expand_inputs` runs on the driver and gives the sorted list of files; `open_input` runs in a task
and opens one of them for reading. Local paths, file://, s3:// / s3a:// and http(s):// are understood:
remote files are streamed with retries from where a failed request broke off
(blending/remote_files.py), with the S3 settings of the config's `remote` section or the usual AWS
variables and files; S3 globs are listed, and Parquet on S3 read, through pyarrow. A Common Crawl
listing (`warc.paths` or `warc.paths.gz`: one path per line, relative to the crawl's bucket) is
resolved against `base` (a local folder in tests; `s3a://commoncrawl/` or
`https://data.commoncrawl.org/` on a cluster).
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import io
import os
from typing import BinaryIO

import pyarrow as pa
import pyarrow.fs as pafs

from blending.remote_files import (
    DEFAULT_REMOTE,
    HTTP_SCHEMES,
    S3_SCHEMES,
    RemoteConfig,
    RemoteFile,
    is_remote,
    open_remote,
    scheme_of,
)
from blending.stage_folder import InputError

COMMON_CRAWL_BASE = "https://data.commoncrawl.org/"
LISTING_SUFFIXES = (".paths", ".paths.gz")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")
# The drop reason of the rest of a remote file the storage kept failing to give, after its retries.
READ_FAILED = "read_failed"


def is_listing(path: str) -> bool:
    return path.endswith(LISTING_SUFFIXES)


def _pyarrow_fs(uri: str, settings: RemoteConfig) -> tuple[pafs.FileSystem, str]:
    scheme = scheme_of(uri)
    if not scheme:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    if scheme in S3_SCHEMES:
        region = settings.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        fs = pafs.S3FileSystem(endpoint_override=settings.endpoint or None, region=region or None,
                               anonymous=settings.anonymous, connect_timeout=settings.timeout_s,
                               request_timeout=settings.timeout_s,
                               retry_strategy=pafs.AwsStandardS3RetryStrategy(settings.max_attempts))
        return fs, uri.split("://", 1)[1]
    return pafs.FileSystem.from_uri(uri)


def _codec(path: str) -> str | None:
    return pa.Codec.detect(path).name if any(path.endswith(s) for s in COMPRESSED_SUFFIXES) else None


def open_input(path: str, decompress: bool = False, settings: RemoteConfig = DEFAULT_REMOTE) -> BinaryIO:
    """A file opened for sequential binary reading, wherever it is; with `decompress`, a .gz, .bz2,
    .zst or .lz4 file is read decompressed (WARC files are not: their reader splits gzip members).
    An s3:// or http(s):// file is streamed with retries (blending/remote_files.py): its reads raise
    RemoteReadError once the storage keeps failing, and `input_retries(f)` counts the requests made again."""
    codec = _codec(path) if decompress else None
    if is_remote(path):
        stream = open_remote(path, settings)
    elif not scheme_of(path):
        stream = open(path, "rb")
    else:
        fs, p = _pyarrow_fs(path, settings)
        stream = io.BufferedReader(fs.open_input_stream(p))
    if codec is None:
        return stream
    return io.BufferedReader(_Decompressed(stream, codec))


class _Decompressed(io.RawIOBase):
    """A compressed stream read decompressed; closing it closes the stream, whose retries stay readable."""

    def __init__(self, stream: BinaryIO, codec: str):
        self.stream = stream
        self._inner = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), codec)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        self.stream.close()
        super().close()


def input_retries(f: BinaryIO) -> int:
    """Requests an input file opened by `open_input` made again after a transient failure (0 for local files)."""
    raw = getattr(f, "raw", None)
    if isinstance(raw, _Decompressed):
        raw = getattr(raw.stream, "raw", None)
    return raw.retries if isinstance(raw, RemoteFile) else 0


def open_random_access(path: str, settings: RemoteConfig = DEFAULT_REMOTE) -> BinaryIO:
    """A file opened for reading with seeks (Parquet); an http(s) file is read into memory."""
    scheme = scheme_of(path)
    if scheme in HTTP_SCHEMES:
        with open_remote(path, settings) as stream:
            return io.BytesIO(stream.read())
    if not scheme:
        return open(path, "rb")
    fs, p = _pyarrow_fs(path, settings)
    return fs.open_input_file(p)


def read_listing(path: str, base: str, settings: RemoteConfig = DEFAULT_REMOTE) -> list[str]:
    """The files a Common Crawl `*.paths(.gz)` listing names, resolved against `base`."""
    with open_input(path, settings=settings) as f:
        data = f.read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    base = base if base.endswith("/") else base + "/"
    lines = io.StringIO(data.decode("utf-8"))
    return [base + line.strip().lstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def _glob(pattern: str, settings: RemoteConfig) -> list[str]:
    scheme = scheme_of(pattern)
    if not glob.has_magic(pattern):
        return [pattern]
    if not scheme:
        return sorted(glob.glob(pattern))
    if scheme in ("http", "https"):
        raise ValueError(f"cannot list {pattern}: http(s) has no directory listing; use a paths listing")
    fs, p = _pyarrow_fs(pattern, settings)
    prefix = pattern.split("://", 1)[0] + "://"
    parent = p
    while glob.has_magic(parent):
        parent = parent.rsplit("/", 1)[0]
    infos = fs.get_file_info(pafs.FileSelector(parent, recursive="**" in p))
    return sorted(prefix + i.path for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatch(i.path, p))


def check_local_patterns(patterns: list[str]) -> None:
    """Each local path exists and each local glob matches something (URIs and listings are left to
    expand_inputs): checked before a Spark session starts, so a typo costs no JVM start."""
    for pattern in patterns:
        if scheme_of(pattern):
            continue
        found = glob.glob(pattern) if glob.has_magic(pattern) else os.path.exists(pattern)
        if not found:
            raise FileNotFoundError(f"--input {pattern}: no such file or folder, or nothing matches it")


def expand_inputs(patterns: list[str], base: str = COMMON_CRAWL_BASE, max_files: int | None = None,
                  settings: RemoteConfig = DEFAULT_REMOTE) -> list[str]:
    """Every file the patterns name, sorted and deduplicated (local paths made absolute); listings
    expanded against `base`. A pattern that matches nothing is an error: an empty input is a mistake,
    not an empty output. So are two files with the same name: a document's origin (and so its doc_id)
    names its file by basename."""
    files: list[str] = []
    for pattern in patterns:
        matched = _glob(pattern, settings)
        if not matched:
            raise FileNotFoundError(f"no input matches {pattern!r}")
        for path in matched:
            files.extend(read_listing(path, base, settings) if is_listing(path) else [path])
    files = sorted({f if scheme_of(f) else os.path.abspath(f) for f in files})
    files = files[:max_files] if max_files else files
    by_name: dict[str, str] = {}
    for f in files:
        name = basename(f)
        if name in by_name:
            raise InputError(f"two input files named {name!r} ({by_name[name]}, {f}): origins would collide")
        by_name[name] = f
    return files


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def describe_files(paths: list[str]) -> list[dict]:
    """Input files with their sizes, as _SUCCESS records them. Remote files are not looked up one by
    one (a crawl has tens of thousands); a local file that is missing has size None."""
    described = []
    for path in paths:
        size = None
        if not scheme_of(path) or scheme_of(path) == "file":
            local = path.split("://", 1)[-1]
            size = os.path.getsize(local) if os.path.isfile(local) else None
        described.append({"path": path, "size": size})
    return described
