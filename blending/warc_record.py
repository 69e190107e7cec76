"""The WARC record behind an origin ("FILE@OFFSET", or "FILE@OFFSET+SKIP" for a record inside a gzip
member), re-read from the file wherever it lives: a local path, s3:// or https://. A remote file is read
with one Range request from the offset (blending/remote_files.py, with its retries) and only as far as
the record goes: its gzip member, or its header and Content-Length.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from blending.remote_files import DEFAULT_REMOTE, RemoteConfig, is_remote, open_remote

GZIP_MAGIC = b"\x1f\x8b\x08"
MAX_RECORD_BYTES = 64 << 20  # a record is read no further than this
_ORIGIN = re.compile(r"(?P<name>.+)@(?P<offset>\d+)(?:\+(?P<skip>\d+))?$")
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)


@dataclass
class WarcOrigin:
    name: str  # the WARC file's basename
    offset: int  # where the record's gzip member (or the plain record) starts in the file
    skip: int = 0  # decompressed bytes before the record inside its member


@dataclass
class Record:
    location: str  # the file it was read from
    origin: str
    warc_type: str | None
    target_uri: str | None
    http_status: int | None
    content_type: str | None
    payload: bytes  # the HTTP body (the whole block for a record that is not an HTTP response)

    def page(self) -> str:
        """The payload as text, decoded by the charset its Content-Type names (else UTF-8)."""
        found = _CHARSET.search(self.content_type or "")
        try:
            return self.payload.decode(found.group(1) if found else "utf-8", "replace")
        except LookupError:
            return self.payload.decode("utf-8", "replace")

    def as_dict(self, max_chars: int = 65536) -> dict:
        return {"location": self.location, "origin": self.origin, "warc_type": self.warc_type,
                "target_uri": self.target_uri, "http_status": self.http_status, "content_type": self.content_type,
                "payload_bytes": len(self.payload), "page": self.page()[:max_chars]}


def parse_warc_origin(origin: str) -> WarcOrigin | None:
    """The parts of a WARC origin; None for an origin of another kind (an input file's "name:row")."""
    match = _ORIGIN.match(origin)
    if not match:
        return None
    return WarcOrigin(match["name"], int(match["offset"]), int(match["skip"] or 0))


def warc_location(where: str, name: str) -> str:
    """The file `name` in `where` (a folder, an s3:// prefix or an https:// base), or `where` itself
    when it names that file."""
    if where.rstrip("/").rsplit("/", 1)[-1] == name:
        return where
    if is_remote(where):
        return where.rstrip("/") + "/" + name
    return os.path.join(where, name)


def read_record(location: str, origin: str, settings: RemoteConfig = DEFAULT_REMOTE) -> Record:
    """The record at `origin` in the WARC file at `location`."""
    parsed = parse_warc_origin(origin)
    if parsed is None:
        raise ValueError(f"{origin!r} is not a WARC origin (FILE@OFFSET)")
    if is_remote(location):
        stream = open_remote(location, settings, parsed.offset)
    else:
        stream = open(location, "rb")  # noqa: SIM115 - closed below
        stream.seek(parsed.offset)
    with stream:
        data = _record_bytes(stream, parsed.skip)
    return _parse(location, origin, data)


def _record_bytes(stream: BinaryIO, skip: int) -> bytes:
    """The record's bytes from the stream's position: its gzip member decompressed from `skip` on, or a
    plain record through its Content-Length."""
    first = stream.read(65536)
    if first.startswith(GZIP_MAGIC):
        inflater, out, chunk = zlib.decompressobj(wbits=31), bytearray(), first
        while chunk and not inflater.eof and len(out) < MAX_RECORD_BYTES + skip:
            out += inflater.decompress(chunk)
            chunk = stream.read(65536) if not inflater.eof else b""
        if not inflater.eof and len(out) < MAX_RECORD_BYTES + skip:
            raise ValueError("the file ends inside the record's gzip member")
        return bytes(out[skip:])
    data = bytearray(first)
    while b"\r\n\r\n" not in data[:1 << 20]:
        more = stream.read(65536)
        if not more:
            break
        data += more
    header_end = data.find(b"\r\n\r\n") + 4
    length = _header(bytes(data[:header_end]), b"content-length")
    want = min(header_end + int(length or 0), MAX_RECORD_BYTES)
    while len(data) < want:
        more = stream.read(min(1 << 20, want - len(data)))
        if not more:
            break
        data += more
    return bytes(data[:want])


def _header(block: bytes, name: bytes) -> str | None:
    for line in block.split(b"\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


def _parse(location: str, origin: str, data: bytes) -> Record:
    if not data.startswith(b"WARC/"):
        raise ValueError(f"{location}: no WARC record at {origin}")
    header_end = data.find(b"\r\n\r\n")
    header, block = data[:header_end], data[header_end + 4:]
    length = _header(header, b"content-length")
    block = block[: int(length)] if length and length.isdigit() else block
    warc_type, target = _header(header, b"warc-type"), _header(header, b"warc-target-uri")
    status = content_type = None
    payload = block
    if block.startswith(b"HTTP/"):
        http_end = block.find(b"\r\n\r\n")
        http_head = block[:http_end] if http_end >= 0 else block
        payload = block[http_end + 4:] if http_end >= 0 else b""
        parts = http_head.split(b"\r\n", 1)[0].split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        content_type = _header(http_head.replace(b"\r\n", b"\n"), b"content-type")
    return Record(location, origin, warc_type, target, status, content_type, payload)
