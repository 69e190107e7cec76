"""The one text normalisation the classifier sees, in training and in scoring, and training windows.

fastText splits on whitespace only and reads a newline as the end of an example, so punctuation is
cut off words, everything is one line, and surface styles that say nothing about quality are folded:
case, Unicode compatibility forms, curly quotes and dashes (books and web pages type them differently).
"""

from __future__ import annotations

import re
import unicodedata

_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "_": " ",  # Gutenberg's _italics_
})
_TOKEN = re.compile(r"\w+|[^\w\s]")


def normalize(text: str) -> str:
    """Lower-cased words and punctuation marks, one space apart, on one line."""
    text = unicodedata.normalize("NFKC", text).translate(_FOLD).lower()
    return " ".join(_TOKEN.findall(text))


def windows(text: str, size: int) -> list[str]:
    """The text's words packed into consecutive windows of about `size` characters each (a window ends
    before the word that would make it longer); the shorter remainder is left out, so every window is
    within one word of `size` and length alone cannot tell the classes apart."""
    out, current, length = [], [], 0
    for word in text.split():
        if current and length + 1 + len(word) > size:
            out.append(" ".join(current))
            current, length = [], -1
        current.append(word)
        length += 1 + len(word)
    if current and length >= size - 20:
        out.append(" ".join(current))
    return out
