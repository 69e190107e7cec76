"""Crawled text and URLs on a terminal: their control characters shown, never obeyed."""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, and the C1 controls (an ESC [ ... sequence recolours or clears
# the terminal; U+009B is a one-character ESC [)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """`text` as a string with each control character written as its escape, e.g. ESC as `\\x1b`."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def printable_json(text: str) -> str:
    """JSON text with the controls json.dumps(ensure_ascii=False) leaves raw (DEL, C1) as \\u escapes."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
