"""An HTTP payload as the page's bytes: undo the Content-Encoding, within a size limit.

Crawlers often store the payload already decoded but keep the Content-Encoding header (ClueWeb09
does; Common Crawl renames it). A payload that already starts like markup is therefore taken as it is,
whatever the header says. Decompression stops at `limit` bytes: a small compressed payload can expand
without bound.
"""

from __future__ import annotations

import zlib

import brotli


class ContentDecodingError(ValueError):
    pass


class PayloadTooLarge(ValueError):
    pass


def looks_like_markup(payload: bytes) -> bool:
    return payload[:512].lstrip(b"\xef\xbb\xbf \t\r\n\x00").startswith(b"<")


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=wbits)
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise PayloadTooLarge(f"decompresses to more than {limit} bytes")
    return out + inflater.flush()


def _decode_one(data: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity", "none"):
        return data
    try:
        if encoding in ("gzip", "x-gzip"):
            return _inflate(data, 47, limit)  # 47: gzip or zlib header, detected
        if encoding == "deflate":
            try:
                return _inflate(data, 15, limit)  # zlib-wrapped, as the standard says
            except zlib.error:
                return _inflate(data, -15, limit)  # raw deflate, as many servers send
        if encoding == "br":
            out = brotli.Decompressor().process(data, output_buffer_limit=limit + 1)
            if len(out) > limit:
                raise PayloadTooLarge(f"decompresses to more than {limit} bytes")
            return out
    except (zlib.error, brotli.error) as e:
        raise ContentDecodingError(f"{encoding}: {e}") from e
    raise ContentDecodingError(f"unsupported Content-Encoding {encoding!r}")


def decode_content(payload: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The payload with its Content-Encoding(s) undone; raises ContentDecodingError or PayloadTooLarge."""
    encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
    if not encodings or looks_like_markup(payload):
        return payload
    for encoding in reversed(encodings):  # the last encoding applied is undone first
        payload = _decode_one(payload, encoding, limit)
    return payload
