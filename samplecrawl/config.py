"""What a sample crawl is made of, in stated proportions.

Proportions are shares of pages (a page is one fetch: request + response + metadata records, or
request + revisit + metadata). Counts are rounded by largest remainder, so a crawl of P pages holds
exactly round(P * share) pages of each kind, and every crawl ends with one truncated response record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# The name and version the files carry (warcinfo `publisher` and `software`, truth.json `generator`): what
# the builder was called, and dataprep's version, while it lived in dataprep/. Kept as they were, so the
# same seed and material still give byte-identical files.
GENERATOR_NAME = "dataprep.samplecrawl"
__version__ = "0.1.0"

# Page categories, with what the pipeline is expected to do with their response record:
# (expected outcome, the stage that produces it). "keep" pages reach the output.
CATEGORY_OUTCOMES: dict[str, tuple[str, str | None]] = {
    "clean": ("keep", None),  # an English article in a real site's page
    "leaked": ("keep", None),  # an article quoting a benchmark item (leaks.py): decontaminate cuts a long quote
    "recrawl": ("exact_duplicate", "dedup"),  # the same URL fetched again later, identical payload
    "near_duplicate": ("near_duplicate", "dedup"),  # edited copy on another site (keep if Jaccard < threshold)
    "non_english": ("non_english", "cleanup"),
    "legacy_charset": ("keep", None),  # English in windows-1252 / iso-8859-1 is kept; ru / ja is non_english
    "short": ("too_short", "cleanup"),  # under 512 characters of text
    "javascript_notice": ("javascript_notice", "cleanup"),  # "please enable JavaScript", under 256 characters
    "non_html": ("not_html", "extract"),  # PDF, JSON, PNG, CSS, JavaScript, plain text, RSS
    "revisit": ("not_response", "extract"),  # WARC revisit record (server-not-modified)
    "truncated": ("truncated_record", "extract"),  # the last record of the last file, clipped mid-gzip-member
}


@dataclass(frozen=True)
class CrawlMix:
    """Shares of pages by category; they must add up to 1. The truncated record comes on top (one per
    crawl, taken from the clean pages)."""

    clean: float = 0.49
    leaked: float = 0.04
    recrawl: float = 0.03
    near_duplicate: float = 0.08
    non_english: float = 0.15
    legacy_charset: float = 0.05
    short: float = 0.05
    javascript_notice: float = 0.03
    non_html: float = 0.05
    revisit: float = 0.03

    def __post_init__(self):
        shares = dataclasses.asdict(self)
        if any(v < 0 for v in shares.values()):
            raise ValueError(f"negative share in {shares}")
        if abs(sum(shares.values()) - 1.0) > 1e-9:
            raise ValueError(f"page shares must add up to 1, got {sum(shares.values()):.6f}")


@dataclass(frozen=True)
class SampleCrawlConfig:
    mix: CrawlMix = field(default_factory=CrawlMix)
    # Word-level edit rates of near-duplicates, used in turn (each word is substituted, deleted or has a
    # word inserted after it with this probability). 0.0: the same text under another site's template.
    near_duplicate_edit_rates: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1)
    jaccard_threshold: float = 0.8  # dedup's; near-duplicates at or above it are expected to be removed
    shingle_words: int = 5  # truth.json's Jaccard is over sets of 5-word shingles
    # Full HTML pages (clean, near-duplicate, non-English, legacy, recrawl) are kept within these sizes.
    page_bytes: tuple[int, int] = (10_000, 60_000)
    content_median_chars: int = 4_000  # the article's text: log-normal around this, clipped to the range
    content_chars: tuple[int, int] = (1_500, 30_000)
    short_page_chars: tuple[int, int] = (200, 420)  # the one paragraph of a short page
    # How UTF-8 pages declare their charset: HTTP header and meta tag, header only, meta only, nowhere.
    utf8_declarations: tuple[tuple[str, float], ...] = (("both", 0.5), ("header", 0.2), ("meta", 0.2), ("none", 0.1))
    # Legacy charsets and the language of the text they carry; declared in the header or the meta tag only.
    legacy_charsets: tuple[tuple[str, str, float], ...] = (
        ("windows-1252", "en", 0.35),
        ("iso-8859-1", "en", 0.25),
        ("koi8-r", "ru", 0.2),
        ("shift_jis", "ja", 0.2),
    )
    non_html_types: tuple[tuple[str, float], ...] = (
        ("application/pdf", 0.25),
        ("application/json", 0.2),
        ("image/png", 0.2),
        ("application/javascript", 0.15),
        ("text/css", 0.1),
        ("text/plain", 0.05),
        ("application/rss+xml", 0.05),
    )
    # A non-English language is used for pages when the material has this much text in it.
    min_language_paragraphs: int = 40
    min_language_chars: int = 5_000
    start_date: str = "2024-05-18T00:00:00Z"  # WARC-Date of the first fetch; the seed shifts it by whole days
    seconds_per_fetch: float = 2.0
    gzip_level: int = 6
    # Leaked pages (leaks.py): the tasks they quote, from the first items of each (those the demo
    # evaluates), and the share whose quote is a fragment too short to be found.
    leak_tasks: tuple[str, ...] = ("lambada", "piqa", "hellaswag", "winogrande", "boolq")
    leak_items_per_task: int = 500
    leak_fragment_share: float = 0.4
    crawl_name: str = "SAMPLE-CRAWL"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
