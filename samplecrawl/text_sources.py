"""Real prose and page text split into paragraphs: the content a sample-crawl page is made of.

The readers of the prose sources and of page text are dataprep's (dataprep/quality/source_texts.py: the
quality classifier's training texts are read with them); this module adds what only the sample crawl
needs: news articles' gold bodies, and the prose lines of real non-English pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from dataprep.quality.source_texts import (
    CJK_LANGUAGES,
    MAX_PARAGRAPH_CHARS,
    MIN_CJK_PARAGRAPH_CHARS,
    MIN_PARAGRAPH_CHARS,
    collapse,
    decode_text,
    gutenberg_paragraphs,
    keep_paragraph,
    language_of,
    speech_paragraphs,
    visible_lines,
    wikitext_paragraphs,
)

__all__ = [
    "CJK_LANGUAGES",
    "MAX_PARAGRAPH_CHARS",
    "MIN_CJK_PARAGRAPH_CHARS",
    "MIN_PARAGRAPH_CHARS",
    "article_paragraphs",
    "collapse",
    "decode_text",
    "gutenberg_paragraphs",
    "keep_paragraph",
    "language_of",
    "page_language",
    "page_paragraphs",
    "speech_paragraphs",
    "title_from_url",
    "visible_lines",
    "wikitext_paragraphs",
]


def title_from_url(url: str) -> str:
    """A readable title from an article URL's last path segment ('.../so-many-games' -> 'So Many Games')."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    for part in reversed(parts):
        words = [w for w in re.split(r"[-_+]", re.sub(r"\.\w+$", "", part)) if w and not w.isdigit()]
        if len(words) >= 2:
            return " ".join(words[:12]).title()
    return urlsplit(url).netloc or "Article"


def article_paragraphs(body: str, url: str) -> Iterator[tuple[str, str]]:
    """A gold article body (one paragraph per line) and its URL."""
    title = title_from_url(url)
    for line in body.splitlines():
        paragraph = collapse(line)
        if paragraph:
            yield title, paragraph


def page_language(lines: list[str]) -> str | None:
    """The language most of a page's text is in (pycld2 over the joined lines)."""
    return language_of("\n".join(lines)[:100_000])


def page_paragraphs(lines: list[str], language: str) -> Iterator[str]:
    """Lines of a real page long enough to be prose and reliably in the page's language."""
    for line in lines:
        if keep_paragraph(line, language) and language_of(line) == language:
            yield line
