"""Page bytes -> str. The order is the HTML standard's: a byte order mark, then the HTTP header's
charset, then the page's own declaration (<meta> or the XML declaration), then detection (uchardet,
through resiliparse). Labels map to codecs as browsers map them (WHATWG: "iso-8859-1" is windows-1252,
"gb2312" is GBK). The first candidate that decodes the bytes cleanly wins. When none does, the first
candidate is used with U+FFFD for the bad bytes, as a browser would show the page, provided they are at
most `max_replaced_share` of the text; otherwise the page cannot be decoded and is dropped."""

from __future__ import annotations

import re
from dataclasses import dataclass

from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5

MAX_REPLACED_SHARE = 0.01
META_SNIFF_BYTES = 4096  # the standard's prescan looks at 1024; real pages put long heads first
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_:.\-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([a-z0-9_:.\-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # the Python codec used
    via: str  # bom, http, meta, detected, or one of those + "+replaced"


def meta_charset(payload: bytes) -> str | None:
    """The charset a page declares in its first bytes: <meta charset>, <meta http-equiv> or <?xml?>."""
    head = payload[:META_SNIFF_BYTES]
    match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    return match.group(1).decode("ascii", "replace") if match else None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    return map_encoding_to_html5(label.strip().strip("\"'").lower(), fallback_utf8=False)


def candidates(payload: bytes, http_charset: str | None) -> list[tuple[str, str]]:
    """(how it was found, codec) in the order they are tried; each codec once."""
    found: list[tuple[str, str]] = []
    for bom, codec in _BOMS:
        if payload.startswith(bom):
            found.append(("bom", codec))
            break
    found.append(("http", _codec(http_charset)))
    found.append(("meta", _codec(meta_charset(payload))))
    found.append(("detected", detect_encoding(payload)))
    seen: set[str] = set()
    ordered = []
    for via, codec in found:
        if codec and codec not in seen:
            seen.add(codec)
            ordered.append((via, codec))
    return ordered or [("fallback", "utf-8")]


def decode_html(payload: bytes, http_charset: str | None) -> Decoded | None:
    """The page as text, or None when it cannot be decoded (see the module's docstring)."""
    tried = candidates(payload, http_charset)
    for via, codec in tried:
        try:
            return Decoded(_strip_bom(payload.decode(codec)), codec, via)
        except (UnicodeDecodeError, LookupError):
            continue
    for via, codec in tried:
        try:
            text = payload.decode(codec, errors="replace")
        except LookupError:
            continue
        if text.count("\ufffd") <= MAX_REPLACED_SHARE * max(len(text), 1):
            return Decoded(_strip_bom(text), codec, via + "+replaced")
        return None
    return None


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def decode_text(data: bytes) -> Decoded | None:
    """A plain-text file's bytes as text: UTF-8 when they are UTF-8, else as for a page (byte order
    mark, detection; a text file declares nothing)."""
    try:
        return Decoded(_strip_bom(data.decode("utf-8")), "utf-8", "utf-8")
    except UnicodeDecodeError:
        return decode_html(data, None)
