"""Readers of the real prose and page text the repository's texts come from, split into paragraphs.

The default quality classifier's positives (build_corpus.py: WikiText-2, Project Gutenberg books, NLTK's
speeches) and its whole-page negatives (`visible_lines`) are read with these; the sample-crawl generator
(samplecrawl/) fills its pages with paragraphs read the same way.

Each reader takes the raw bytes of one source file and yields `(title, paragraph)` pairs, where the
title names the document the paragraph comes from (a Wikipedia article, a book chapter, a speech).
Paragraphs are whitespace-collapsed single lines.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from collections.abc import Callable, Iterator

import pycld2

MIN_PARAGRAPH_CHARS = 80
MAX_PARAGRAPH_CHARS = 3000
# Scripts without spaces between words carry more per character: a 30-character Japanese line is a sentence.
MIN_CJK_PARAGRAPH_CHARS = 30
CJK_LANGUAGES = {"ja", "zh", "zh-Hant", "ko"}


def collapse(text: str) -> str:
    return " ".join(text.split())


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Latin-1: the two encodings the prose sources use."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def language_of(text: str) -> str | None:
    """pycld2's language code for a text when it is reliable, else None."""
    try:
        reliable, _, details = pycld2.detect(text)
    except pycld2.error:
        return None
    if not reliable or details[0][1] == "un":
        return None
    return details[0][1]


def _blank_line_paragraphs(text: str) -> list[str]:
    return [collapse(p) for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


def keep_paragraph(paragraph: str, language: str = "en") -> bool:
    low = MIN_CJK_PARAGRAPH_CHARS if language in CJK_LANGUAGES else MIN_PARAGRAPH_CHARS
    return low <= len(paragraph) <= MAX_PARAGRAPH_CHARS


def gutenberg_paragraphs(data: bytes) -> Iterator[tuple[str, str]]:
    """A Project Gutenberg book without its license header and footer; titles are 'Book, Chapter N'."""
    text = decode_text(data).replace("\r\n", "\n")
    title_match = re.search(r"^Title:\s*(.+)$", text, re.M)
    book = collapse(title_match.group(1)) if title_match else "Untitled"
    start = re.search(r"^\*\*\* ?START OF.*$", text, re.M)
    end = re.search(r"^\*\*\* ?END OF.*$", text, re.M)
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    chapter = book
    for paragraph in _blank_line_paragraphs(body):
        heading = re.match(r"^(chapter|adventure|letter)\s+[\w.]+", paragraph, re.I)
        if heading and len(paragraph) < 80:
            chapter = f"{book}, {paragraph.title()}"
            continue
        if keep_paragraph(paragraph):
            yield chapter, paragraph


_WIKITEXT_FIXES = [
    (re.compile(r" @([-,.])@ "), r"\1"),
    (re.compile(r" ([,.;:!?)\]]|'s|n't|'re|'ve|'ll|'d|'m)(?=\s|$)"), r"\1"),
    (re.compile(r"([(\[]) "), r"\1"),
]


def _detokenize(text: str) -> str:
    text = collapse(text)
    for pattern, replacement in _WIKITEXT_FIXES:
        text = pattern.sub(replacement, text)
    return text


def wikitext_paragraphs(data: bytes) -> Iterator[tuple[str, str]]:
    """WikiText-2 (tokenized form): ' = Title = ' lines start articles; `<unk>` words are removed and
    paragraphs where they were more than 3% of the words are skipped."""
    title = "Wikipedia"
    for line in decode_text(data).splitlines():
        line = line.strip()
        heading = re.fullmatch(r"(=+) (.+?) \1", line)
        if heading:
            if len(heading.group(1)) == 1:
                title = _detokenize(heading.group(2).replace("<unk>", "")) or "Wikipedia"
            continue
        words = line.split()
        if not words or words.count("<unk>") > 0.03 * len(words):
            continue
        paragraph = _detokenize(" ".join(w for w in words if w != "<unk>"))
        if keep_paragraph(paragraph):
            yield title, paragraph


def speech_paragraphs(data: bytes, keep: Callable[[str], bool] = lambda name: True) -> Iterator[tuple[str, str]]:
    """NLTK's speech corpora (a zip of one text file per speech, named like '1789-Washington.txt'); only
    the speeches whose name in the zip `keep` accepts."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".txt") and keep(n)):
            stem = name.rsplit("/", 1)[-1][:-4]
            corpus = name.split("/", 1)[0].replace("_", " ").title()
            title = f"{corpus}: {stem.replace('-', ' ')}"
            for paragraph in _blank_line_paragraphs(decode_text(archive.read(name))):
                if keep_paragraph(paragraph):
                    yield title, paragraph


_BLOCK_TAG = re.compile(
    r"<(?:p|div|br|li|td|th|tr|h[1-6]|table|ul|ol|section|article|header|footer|nav|dd|dt|blockquote|pre|form)\b[^>]*>",
    re.I,
)


def visible_lines(page: str) -> list[str]:
    """The text lines a browser would show, split at block elements; for reading paragraphs out of real
    pages and for measuring what text a page template still carries."""
    page = re.sub(r"(?is)<(script|style|noscript|template)\b.*?</\1\s*>", " ", page)
    page = re.sub(r"(?s)<!--.*?-->", " ", page)
    page = _BLOCK_TAG.sub("\n", page)
    page = html.unescape(re.sub(r"<[^>]*>", " ", page))
    return [line for line in (collapse(x) for x in page.split("\n")) if line]
