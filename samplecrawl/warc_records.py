"""WARC/1.0 records as bytes, laid out as Common Crawl writes them, each in its own gzip member.

Written by hand rather than through a WARC library so that every byte is fixed by the seed: record ids
come from a hash, dates from the plan, and gzip members carry mtime 0 and a fixed OS byte.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
import zlib
from datetime import UTC, datetime

WARC_VERSION = b"WARC/1.0"
REVISIT_PROFILE = "http://netpreserve.org/warc/1.0/revisit/server-not-modified"


def record_id(*key: object) -> str:
    """A version-4-shaped UUID URN derived from the key: the same for the same seed and record."""
    digest = hashlib.sha256(":".join(map(str, key)).encode()).digest()
    return f"<urn:uuid:{uuid.UUID(bytes=digest[:16], version=4)}>"


def sha1_digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def warc_date(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def http_date(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def record(headers: list[tuple[str, str]], block: bytes) -> bytes:
    """One WARC record: headers (Content-Length goes after the first three, as Common Crawl puts it),
    the block, and the two CRLFs that end a record."""
    lines = [WARC_VERSION]
    for i, (name, value) in enumerate(headers):
        if i == 3:
            lines.append(b"Content-Length: %d" % len(block))
        lines.append(f"{name}: {value}".encode())
    if len(headers) <= 3:
        lines.append(b"Content-Length: %d" % len(block))
    return b"\r\n".join(lines) + b"\r\n\r\n" + block + b"\r\n\r\n"


def http_head(status_line: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [status_line] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def gzip_member(data: bytes, level: int) -> bytes:
    """A gzip member with mtime 0 and OS byte 255 ('unknown'), whatever the platform's zlib writes."""
    member = bytearray(zlib.compress(data, level, wbits=31))
    member[9] = 255
    return bytes(member)


def warc_fields(fields: list[tuple[str, str]]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in fields).encode()
