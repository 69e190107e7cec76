"""The files an estimate runs on: a seeded draw from the listing and their sizes; per-file figures of
its output, for the spread between files."""

from __future__ import annotations

import os
import random
import urllib.request

import pyarrow.fs as pafs

from dataprep.framework.inputs import basename

HTTP_TIMEOUT_S = 60


def draw_sample(files: list[str], count: int, seed: int) -> list[str]:
    """`count` of `files`, drawn with `seed` (the same listing and seed give the same files), sorted."""
    if count >= len(files):
        return list(files)
    return sorted(random.Random(seed).sample(sorted(files), count))


def _scheme(path: str) -> str:
    return path.split("://", 1)[0].lower() if "://" in path else ""


def file_size(path: str) -> int | None:
    """Bytes of one input file, local or remote; None when the storage does not say."""
    scheme = _scheme(path)
    if scheme in ("http", "https"):
        request = urllib.request.Request(path, method="HEAD")  # noqa: S310 - a URL the user gave
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
            length = response.headers.get("Content-Length")
        return int(length) if length is not None else None
    if scheme in ("", "file"):
        local = path.split("://", 1)[-1]
        return os.path.getsize(local) if os.path.isfile(local) else None
    fs, p = pafs.FileSystem.from_uri("s3" + path[len(scheme):] if scheme in ("s3a", "s3n") else path)
    info = fs.get_file_info(p)
    return info.size if info.type == pafs.FileType.File else None


def listing_sizes(files: list[str]) -> list[int | None]:
    """Every local file's size; a remote listing's files are not looked up one by one (a crawl has tens
    of thousands): empty then."""
    if any(_scheme(f) not in ("", "file") for f in files):
        return []
    return [file_size(f) for f in files]


def per_file_figures(origins: list[str], sizes_in_bytes: list[int], files: list[str]) -> dict[str, list[int]]:
    """Documents and bytes per sampled file (in `files`' order), from the documents' origins (file
    basename, then @offset or :row) and their text sizes."""
    index = {basename(f): i for i, f in enumerate(files)}
    docs, size = [0] * len(files), [0] * len(files)
    for origin, nbytes in zip(origins, sizes_in_bytes, strict=True):
        name = origin.rsplit("@", 1)[0] if origin.rsplit("@", 1)[0] in index else origin.rsplit(":", 1)[0]
        i = index.get(name)
        if i is not None:
            docs[i] += 1
            size[i] += nbytes
    return {"documents": docs, "bytes": size}
