"""WARC records off a byte stream, every fault counted instead of raised.

The framing is ours so that a damaged file costs only its damaged records (fastwarc and warcio both
stop at the first bad gzip member and lose the rest of the file):

- gzip files: each member is decompressed on its own (WARC's one-record-per-member convention, which
  also makes a member's compressed offset the record's address in Common Crawl's index). A member that
  fails to decompress is a `corrupt_record`; reading resumes at the next gzip header that decompresses
  to a WARC record. A file that ends inside a member gives a `truncated_record`.
- plain files: records are framed by their Content-Length; bytes that do not start a record are skipped
  to the next "WARC/" version line and counted as one `corrupt_record`.

A record whose block is longer than `max_block_bytes` is read past, keeping only its first
`head_bytes` (enough for the HTTP headers). Parsing a record's fields is fastwarc's job (record.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

CORRUPT = "corrupt_record"
TRUNCATED = "truncated_record"

GZIP_MAGIC = b"\x1f\x8b\x08"
READ_CHUNK = 1 << 20
INFLATE_CHUNK = 1 << 20  # decompressed bytes per step: bounded memory even for a gzip bomb
MAX_HEADER_BYTES = 64 << 10  # a WARC header block longer than this is not a header
MAX_RESYNC_HISTORY = 64 << 20  # raw bytes kept to rescan a failed member from its start


@dataclass
class RawRecord:
    offset: str  # byte offset in the file ("1234"); "1234+56" for the 2nd+ record inside one gzip member
    in_bytes: int  # bytes on disk: the gzip member, the plain record, or the skipped region
    fault: str | None = None  # CORRUPT or TRUNCATED
    detail: str | None = None  # what went wrong, for the fault report
    header: bytes = b""  # the WARC header block, version line through the blank line
    block: bytes = b""  # the content block, or its head when longer than the cap
    block_length: int = 0  # the declared Content-Length

    @property
    def data(self) -> bytes:
        return self.header + self.block


class _Stream:
    """A buffered forward reader over a chunk source, with its absolute position and an optional mark
    that keeps bytes from being discarded so the reader can rewind to them."""

    def __init__(self, pull: Callable[[], bytes]):
        self._pull = pull
        self._buf = bytearray()
        self._i = 0  # read index into _buf
        self._base = 0  # absolute position of _buf[0]
        self._mark: int | None = None  # absolute position that must stay in _buf
        self._eof = False

    @property
    def pos(self) -> int:
        return self._base + self._i

    def _fill(self, n: int) -> bool:
        """Have n unread bytes buffered, or as many as remain; True if n are there."""
        while len(self._buf) - self._i < n and not self._eof:
            chunk = self._pull()
            if not chunk:
                self._eof = True
                break
            self._compact()
            self._buf += chunk
        return len(self._buf) - self._i >= n

    def _compact(self) -> None:
        if self._mark is not None and self.pos - self._mark > MAX_RESYNC_HISTORY:
            self._mark = None  # a huge member: rescan from where it failed instead of from its start
        keep_from = self._i if self._mark is None else min(self._i, self._mark - self._base)
        if keep_from > (1 << 20) and keep_from * 2 > len(self._buf):
            del self._buf[:keep_from]
            self._base += keep_from
            self._i -= keep_from

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self._buf[self._i : self._i + n])

    def available(self, n: int) -> memoryview:
        """Up to n buffered bytes, at least one unless at the end; not consumed."""
        if self._i >= len(self._buf):
            self._fill(1)
        return memoryview(self._buf)[self._i : self._i + n]

    def read(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self._buf[self._i : self._i + n])
        self._i += len(out)
        return out

    def skip(self, n: int) -> int:
        skipped = 0
        while skipped < n:
            if self._i >= len(self._buf) and not self._fill(1):
                break
            step = min(n - skipped, len(self._buf) - self._i)
            self._i += step
            skipped += step
        return skipped

    def readline(self, limit: int) -> bytes:
        """The next line with its newline; at most `limit` bytes; b"" at the end."""
        scanned = 0
        while True:
            nl = self._buf.find(b"\n", self._i + scanned, self._i + limit)
            if nl >= 0:
                line = bytes(self._buf[self._i : nl + 1])
                self._i = nl + 1
                return line
            scanned = len(self._buf) - self._i
            if scanned >= limit or not self._fill(scanned + 1):
                line = bytes(self._buf[self._i : self._i + limit])
                self._i += len(line)
                return line

    def skip_until(self, needle: bytes) -> tuple[int, bool]:
        """Skip to the next `needle` (or to the end, if none); the bytes skipped and whether found."""
        skipped = 0
        while True:
            hit = self._buf.find(needle, self._i)
            if hit >= 0:
                skipped += hit - self._i
                self._i = hit
                return skipped, True
            step = max(0, len(self._buf) - self._i - (len(needle) - 1))
            self._i += step
            skipped += step
            if not self._fill(len(needle)):
                rest = len(self._buf) - self._i
                self._i += rest
                return skipped + rest, False

    def at_end(self) -> bool:
        return not self._fill(1)

    def set_mark(self) -> None:
        self._mark = self.pos

    def clear_mark(self) -> None:
        self._mark = None

    def rewind(self, position: int) -> bool:
        """Move back to an absolute position still buffered (at or after the mark); False if gone."""
        if self._mark is None or position < self._mark or position < self._base:
            return False
        self._i = position - self._base
        return True


@dataclass
class _Framed:
    start: int
    length: int
    fault: str | None = None
    detail: str | None = None
    header: bytes = b""
    block: bytes = b""
    block_length: int = 0


def _content_length(header: bytes) -> int | None:
    for line in header.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            try:
                n = int(value.strip())
            except ValueError:
                return None
            return n if n >= 0 else None
    return None


def _skip_to_next_version_line(stream: _Stream) -> int:
    """Skip to the next line that starts with "WARC/" (or to the end); the bytes skipped. Called at
    the start of a line."""
    if stream.peek(5) == b"WARC/":
        return 0
    skipped, found = stream.skip_until(b"\nWARC/")
    return skipped + (stream.skip(1) if found else 0)


def _frame(stream: _Stream, max_block_bytes: int, head_bytes: int) -> Iterator[_Framed]:
    """The records of a decompressed WARC stream, framed by Content-Length."""
    while True:
        start = stream.pos
        line = stream.readline(MAX_HEADER_BYTES)
        if not line:
            return
        if not line.strip():
            continue  # stray blank lines between records are padding, not data
        if not line.startswith(b"WARC/"):
            skipped = len(line) + _skip_to_next_version_line(stream)
            yield _Framed(start, skipped, CORRUPT, f"{skipped} bytes that are not a WARC record")
            continue
        header = bytearray(line)
        while len(header) <= MAX_HEADER_BYTES:
            line = stream.readline(MAX_HEADER_BYTES)
            if not line:
                yield _Framed(start, stream.pos - start, TRUNCATED, "file ends inside the WARC header", bytes(header))
                return
            header += line
            if not line.strip():
                break
        if len(header) > MAX_HEADER_BYTES:
            _skip_to_next_version_line(stream)
            yield _Framed(start, stream.pos - start, CORRUPT, "WARC header has no end", bytes(header[:4096]))
            continue
        header = bytes(header)
        length = _content_length(header)
        if length is None:
            _skip_to_next_version_line(stream)
            yield _Framed(start, stream.pos - start, CORRUPT, "WARC header without a valid Content-Length", header)
            continue
        if length <= max_block_bytes:
            block = stream.read(length)
            got = len(block)
        else:
            block = stream.read(head_bytes)
            got = len(block) + stream.skip(length - len(block))
        if got < length:
            yield _Framed(start, stream.pos - start, TRUNCATED,
                          f"block ends after {got} of {length} bytes", header, block, length)
            return
        while stream.peek(1) in (b"\r", b"\n"):
            stream.skip(1)
        yield _Framed(start, stream.pos - start, None, None, header, block, length)


class _Member:
    """One gzip member of the raw stream, decompressed step by step. Ends quietly at the member's end,
    at the end of the file (`truncated`) or at a zlib error (`error`); the framer then sees an end."""

    def __init__(self, raw: _Stream):
        self.raw = raw
        self.inflater = zlib.decompressobj(wbits=31)
        self.truncated = False
        self.error: str | None = None

    def pull(self) -> bytes:
        inflater = self.inflater
        while not inflater.eof and self.error is None:
            chunk = self.raw.available(READ_CHUNK)
            if not chunk:
                self.truncated = True
                return b""
            try:
                out = inflater.decompress(chunk, INFLATE_CHUNK)
            except zlib.error as e:
                self.error = f"gzip: {e}"
                return b""
            consumed = len(chunk) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
            chunk.release()  # the buffer cannot be resized while a view of it is alive
            self.raw.skip(consumed)
            if out:
                return out
        return b""


def _starts_a_record(raw: _Stream) -> bool:
    """Whether the gzip member at the current position decompresses to the start of a WARC record."""
    try:
        return zlib.decompressobj(wbits=31).decompress(raw.peek(65536), 5) == b"WARC/"
    except zlib.error:
        return False


def _resync_gzip(raw: _Stream) -> int:
    """Skip to the next gzip member that holds a WARC record (or to the end); the bytes skipped."""
    skipped = 0
    while True:
        n, found = raw.skip_until(GZIP_MAGIC)
        skipped += n
        if not found or _starts_a_record(raw):
            return skipped
        skipped += raw.skip(1)


def _read_gzip(raw: _Stream, max_block_bytes: int, head_bytes: int) -> Iterator[RawRecord]:
    while not raw.at_end():
        start = raw.pos
        if raw.peek(3) != GZIP_MAGIC:
            skipped = _resync_gzip(raw)
            yield RawRecord(str(start), skipped, CORRUPT, f"{skipped} bytes that are not a gzip member")
            continue
        raw.set_mark()
        member = _Member(raw)
        held: _Framed | None = None  # one record behind: its size and fate are known at the member's end
        count = 0
        for framed in _frame(_Stream(member.pull), max_block_bytes, head_bytes):
            if held is not None:
                yield _raw_in_member(start, held, held.length)
            held, count = framed, count + 1
        damaged = member.error is not None or member.truncated
        if member.error is not None:
            raw.rewind(start + 1)  # the next member may begin inside what the broken one swallowed
            raw.clear_mark()
            _resync_gzip(raw)
        raw.clear_mark()
        member_bytes = raw.pos - start
        if held is None:
            if damaged:
                fault = CORRUPT if member.error else TRUNCATED
                yield RawRecord(str(start), member_bytes, fault, member.error or "file ends inside a gzip member")
            continue
        if damaged:
            held.fault = CORRUPT if member.error else TRUNCATED
            held.detail = member.error or (held.detail or "file ends inside a gzip member")
        yield _raw_in_member(start, held, member_bytes if count == 1 else held.length)


def _raw_in_member(member_start: int, f: _Framed, in_bytes: int) -> RawRecord:
    offset = str(member_start) if f.start == 0 else f"{member_start}+{f.start}"
    return RawRecord(offset, in_bytes, f.fault, f.detail, f.header, f.block, f.block_length)


def _read_plain(raw: _Stream, max_block_bytes: int, head_bytes: int) -> Iterator[RawRecord]:
    for f in _frame(raw, max_block_bytes, head_bytes):
        yield RawRecord(str(f.start), f.length, f.fault, f.detail, f.header, f.block, f.block_length)


def read_warc(fileobj: BinaryIO, max_block_bytes: int, head_bytes: int = 65536) -> Iterator[RawRecord]:
    """Every record of a WARC file (gzip or plain), and every unreadable stretch, in file order."""
    raw = _Stream(lambda: fileobj.read(READ_CHUNK))
    if raw.peek(3) == GZIP_MAGIC:
        yield from _read_gzip(raw, max_block_bytes, head_bytes)
    else:
        yield from _read_plain(raw, max_block_bytes, head_bytes)
