"""Normal forms for exact dedup: a URL's (the same page fetched again) and a text's (the same text
under another URL)."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

import xxhash

DEFAULT_PORTS = {"http": 80, "https": 443}
_SPACES = re.compile(r"\s+")


def normalize_url(url: str | None) -> str | None:
    """Lowercased scheme and host, default port, fragment and trailing slash removed; None for no URL.

    The path and query keep their case and order: servers may tell them apart."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # e.g. a port that is not a number: compare the string as it is
        return url.rstrip("/")
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        host = f"{userinfo}@{host}"
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, host, path, parts.query, ""))


def normalize_text(text: str | None) -> str:
    """Unicode NFC, lower case, runs of whitespace as one space, no leading or trailing space."""
    if not text:
        return ""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text).lower()).strip()


def text_key(text: str | None) -> str:
    """128-bit hash (hex) of the normalised text: equal keys are the same text."""
    return xxhash.xxh3_128_hexdigest(normalize_text(text).encode("utf-8"))
