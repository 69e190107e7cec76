"""Language identification: CLD2 (pycld2) on pages and texts, langdetect on the extracted text.

CLD2, as the paper and Common Crawl use it (extract, ingest): on a page it reads the HTML itself (tags
skipped, entities expanded) with the hints Common Crawl also gives it, the host's top-level domain and
the HTTP Content-Language header; on plain text it reads the text. The result is CLD2's top language
code ("en", "de", "zh", "zh-Hant") and the share of the text in it (0..1); None and None when CLD2 finds
no language.

langdetect, the paper's English check (cleanup): its most probable language of the text. It draws random
samples; its seed is fixed (seed_langdetect) in every worker before the first detection, and langdetect
reseeds per text, so a text's language depends only on the text.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pycld2
from langdetect import DetectorFactory, detect_langs
from langdetect.lang_detect_exception import LangDetectException

# CLD2 rejects C0/C1 control characters and lone surrogates as "invalid UTF-8".
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
UNKNOWN = "un"


def top_level_domain(url: str | None) -> str:
    """'de' for http://example.de/x; '' when there is none (an IP address, no URL)."""
    if not url:
        return ""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    label = host.rsplit(".", 1)[-1]
    return label if label.isalpha() else ""


def identify_language(
    text: str, is_html: bool = False, url: str | None = None, content_language: str | None = None
) -> tuple[str | None, float | None]:
    """(CLD2 language code, share of the text in that language), or (None, None)."""
    data = _UNSAFE.sub(" ", text).encode("utf-8")
    hints = {}
    if tld := top_level_domain(url):
        hints["hintTopLevelDomain"] = tld
    if content_language:
        hints["hintLanguageHTTPHeaders"] = content_language
    try:
        _reliable, _bytes, details = pycld2.detect(data, isPlainText=not is_html, **hints)
    except pycld2.error:
        try:  # a hint CLD2 cannot parse must not cost the page its language
            _reliable, _bytes, details = pycld2.detect(data, isPlainText=not is_html)
        except pycld2.error:
            return None, None
    _name, code, percent, _score = details[0]
    if code == UNKNOWN:
        return None, None
    return code, percent / 100.0


def seed_langdetect(seed: int) -> None:
    DetectorFactory.seed = seed


def detect_language(text: str) -> str | None:
    """langdetect's most probable language ("en", "de", "zh-cn"), None when it finds nothing to go on."""
    try:
        return detect_langs(text)[0].lang
    except LangDetectException:
        return None
