"""The crawl's plan: which page comes where, what it is made of, and what it duplicates.

The plan is computed in one process from the seed and the material; files are then rendered from it
independently, so the output does not depend on how many processes render.
"""

from __future__ import annotations

import html
import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from .config import SampleCrawlConfig
from .leaks import plan_leak
from .material import Material, Pool
from .templates import Template

REQUEST_RECORDS_PER_PAGE = 3  # request, response (or revisit), metadata
# Bytes a page adds around its content (title, heading, charset declaration), kept clear of the size bounds.
SIZE_MARGIN = 1_200
MIN_PARAGRAPHS = 3
# Two English pages that are not copies share less than this much text (well under dedup's 0.8).
MAX_ACCIDENTAL_OVERLAP = 0.5
MAX_REDRAWS = 20
MAX_DRAWS = 400  # random paragraph picks for one page's content
NON_HTML_EXTENSIONS = {
    "application/pdf": "pdf",
    "application/json": "json",
    "image/png": "png",
    "application/javascript": "js",
    "text/css": "css",
    "text/plain": "txt",
    "application/rss+xml": "xml",
}
_URL_PATTERNS = (
    "/{y}/{m:02d}/{d:02d}/{slug}-{id}/",
    "/news/{slug}-{id}",
    "/article/{id}/{slug}.html",
    "/{section}/{slug}-{id}",
    "/blog/{slug}-{id}.html",
    "/p/{id}-{slug}",
)
_SECTIONS = ("world", "business", "tech", "science", "culture", "sport", "opinion", "local")


@dataclass(slots=True)
class Page:
    index: int
    file: int
    category: str
    date: int  # epoch seconds of the fetch
    url: str = ""
    language: str | None = None
    charset: str | None = None  # Python codec name of the payload; None for binary payloads
    declared: str | None = None  # where the charset is declared: both, header, meta, none
    content_type: str = "text/html"
    template: int | None = None
    pool: str | None = None
    paragraphs: tuple[int, ...] = ()
    title: str = ""
    original: int | None = None  # page index this page re-fetches, revisits or near-duplicates
    edit_rate: float | None = None
    notice: int | None = None  # javascript notice text
    leak: dict | None = None  # a leaked page's quote of a task item (leaks.py)
    asset: int | None = None  # CSS or JavaScript body from the material
    with_metadata: bool = True


def largest_remainder(total: int, shares: dict[str, float]) -> dict[str, int]:
    raw = {k: total * v for k, v in shares.items()}
    counts = {k: math.floor(v) for k, v in raw.items()}
    order = sorted(raw, key=lambda k: (counts[k] - raw[k], list(shares).index(k)))
    for k in order[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def page_count(records: int, files: int) -> tuple[int, int]:
    """Pages for exactly `records` records in `files` files, and how many pages besides the truncated one
    go without a metadata record to make the count exact (0, 1 or 2)."""
    body = records - files  # one warcinfo per file
    pages = math.ceil((body + 1) / REQUEST_RECORDS_PER_PAGE)  # the truncated page has no metadata record
    return pages, REQUEST_RECORDS_PER_PAGE * pages - body - 1


def _weighted(rng: random.Random, choices: tuple[tuple, ...]) -> tuple:
    """One of `choices` (tuples whose last item is the weight), without its weight."""
    return rng.choices([c[:-1] for c in choices], [c[-1] for c in choices])[0]


def slugify(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words[:8]) or "page"


class Planner:
    def __init__(self, material: Material, config: SampleCrawlConfig, seed: int):
        self.material = material
        self.config = config
        self.seed = seed
        self.templates_by_language: dict[str, list[int]] = {}
        for i, template in enumerate(material.templates):
            self.templates_by_language.setdefault(template.language, []).append(i)
        self.english_pools = [name for name in material.pools if name.startswith("en/")]
        self.languages = sorted(
            name
            for name, pool in material.pools.items()
            if not name.startswith("en/")
            and len(pool) >= config.min_language_paragraphs
            and sum(map(len, pool.texts)) >= config.min_language_chars
        )
        self._byte_cache: dict[tuple[str, str], list[int]] = {}
        self._template_cache: dict[tuple[int, str], int] = {}
        self._short_cache: dict[str, list[int]] = {}
        self.clean_pages: list[int] = []
        self._chars_cache: dict[str, list[int]] = {}
        self._users: dict[tuple[str, int], list[int]] = {}
        self._content_chars: dict[int, int] = {}
        self._paragraphs: dict[int, tuple[int, ...]] = {}
        self.near_duplicates = 0
        start = datetime.strptime(config.start_date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        self.start = int(start.timestamp()) + (seed % 365) * 86_400

    # sizes -------------------------------------------------------------------------------------------
    def paragraph_bytes(self, pool: str, charset: str) -> list[int]:
        key = (pool, charset)
        if key not in self._byte_cache:
            self._byte_cache[key] = [
                len(html.escape(t, quote=False).encode(charset, "xmlcharrefreplace")) + 8
                for t in self.material.pools[pool].texts
            ]
        return self._byte_cache[key]

    def template_bytes(self, template: int, charset: str) -> int:
        key = (template, charset)
        if key not in self._template_cache:
            parts = self.material.templates[template].parts
            literal = "".join(parts[0::2])
            self._template_cache[key] = len(literal.encode(charset, "xmlcharrefreplace"))
        return self._template_cache[key]

    def _pick_template(self, rng, language: str, content_bytes: int, charset: str, exclude_host: str | None = None):
        low, high = self.config.page_bytes
        candidates = self.templates_by_language.get(language) or [
            i for ids in self.templates_by_language.values() for i in ids
        ]
        if exclude_host is not None:
            other = [i for i in candidates if self.material.templates[i].host != exclude_host]
            if not other:
                other = [
                    i
                    for ids in self.templates_by_language.values()
                    for i in ids
                    if self.material.templates[i].host != exclude_host
                ]
            candidates = other or candidates
        fitting = [
            i
            for i in candidates
            if low + SIZE_MARGIN <= self.template_bytes(i, charset) + content_bytes <= high - SIZE_MARGIN
        ]
        if fitting:
            return rng.choice(fitting)
        # nothing fits: the template that brings the page closest to the middle of the range
        middle = (low + high) / 2
        return min(candidates, key=lambda i: (abs(self.template_bytes(i, charset) + content_bytes - middle), i))

    def _content(self, rng, pool_name: str, charset: str, budget: int) -> tuple[int, ...]:
        """Paragraphs drawn without replacement from the whole pool, in pool order, up to `budget` bytes
        (at least MIN_PARAGRAPHS, so that two pages rarely draw the same text)."""
        size = len(self.material.pools[pool_name])
        sizes = self.paragraph_bytes(pool_name, charset)
        chosen: set[int] = set()
        total = 0
        for _ in range(MAX_DRAWS):
            i = rng.randrange(size)
            if i in chosen:
                continue
            if len(chosen) >= MIN_PARAGRAPHS and total + sizes[i] > budget:
                if total >= 0.8 * budget:
                    break
                continue
            chosen.add(i)
            total += sizes[i]
        return tuple(sorted(chosen))

    def content_budget(self, rng) -> int:
        low, high = self.config.content_chars
        median = self.config.content_median_chars
        return int(min(high, max(low, rng.lognormvariate(math.log(median), 0.7))))

    # pages -------------------------------------------------------------------------------------------
    def full_page(self, page: Page, rng, language: str, charset: str) -> None:
        pool_name = self.english_pool(rng) if language == "en" else language
        # content first, capped so that the language's smallest template still fits around it
        ids = self.templates_by_language.get(language) or range(len(self.material.templates))
        smallest = min(self.template_bytes(i, charset) for i in ids)
        budget = min(self.content_budget(rng), self.config.page_bytes[1] - 2 * SIZE_MARGIN - smallest)
        page.paragraphs = self._content(rng, pool_name, charset, budget)
        if language == "en":
            for _ in range(MAX_REDRAWS):
                if not self._overlaps_earlier(pool_name, page.paragraphs):
                    break
                page.paragraphs = self._content(rng, pool_name, charset, budget)
            self._register(page.index, pool_name, page.paragraphs)
        content = sum(self.paragraph_bytes(pool_name, charset)[i] for i in page.paragraphs)
        page.template = self._pick_template(rng, language, content, charset)
        page.pool = pool_name
        page.language = language
        page.charset = charset
        page.title = self.material.pools[pool_name].title(page.paragraphs[0])

    # English pages that do not copy each other must not be near-duplicates by chance -----------------
    def _chars(self, pool: str) -> list[int]:
        if pool not in self._chars_cache:
            self._chars_cache[pool] = [len(t) for t in self.material.pools[pool].texts]
        return self._chars_cache[pool]

    def _prefix(self, pool: str, paragraphs: tuple[int, ...]) -> list[int]:
        """Prefix filtering for a weighted Jaccard threshold t: in a fixed order (longest first), the
        paragraphs from which on at least t of the page's text remains. Two pages with Jaccard >= t share
        at least t of the larger one's text, so the first paragraph they share is in both prefixes."""
        chars = self._chars(pool)
        remaining = sum(chars[i] for i in paragraphs)
        need = MAX_ACCIDENTAL_OVERLAP * remaining
        prefix = []
        for i in sorted(paragraphs, key=lambda i: (-chars[i], i)):  # longest first: short prefixes
            if remaining < need:
                break
            prefix.append(i)
            remaining -= chars[i]
        return prefix

    def _overlaps_earlier(self, pool: str, paragraphs: tuple[int, ...]) -> bool:
        """Whether the text shares MAX_ACCIDENTAL_OVERLAP or more (Jaccard over characters of whole
        paragraphs) with an earlier English page."""
        chars = self._chars(pool)
        mine = set(paragraphs)
        total = sum(chars[i] for i in paragraphs)
        seen = set()
        for i in self._prefix(pool, paragraphs):
            for other in self._users.get((pool, i), ()):
                if other in seen:
                    continue
                seen.add(other)
                size = self._content_chars[other]
                if size * MAX_ACCIDENTAL_OVERLAP > total or total * MAX_ACCIDENTAL_OVERLAP > size:
                    continue  # Jaccard is at most the smaller size over the larger
                theirs = self._paragraphs[other]
                common = sum(chars[j] for j in mine.intersection(theirs))
                if common / (total + size - common) >= MAX_ACCIDENTAL_OVERLAP:
                    return True
        return False

    def _register(self, page: int, pool: str, paragraphs: tuple[int, ...]) -> None:
        for i in self._prefix(pool, paragraphs):
            self._users.setdefault((pool, i), []).append(page)
        self._paragraphs[page] = paragraphs
        self._content_chars[page] = sum(self._chars(pool)[i] for i in paragraphs)

    def english_pool(self, rng) -> str:
        """An English pool, in proportion to its paragraphs, so that small pools are not drawn thin."""
        weights = [len(self.material.pools[name]) for name in self.english_pools]
        return rng.choices(self.english_pools, weights)[0]

    def short_paragraphs(self, pool_name: str) -> list[int]:
        if pool_name not in self._short_cache:
            low, high = self.config.short_page_chars
            pool: Pool = self.material.pools[pool_name]
            self._short_cache[pool_name] = [i for i, t in enumerate(pool.texts) if low <= len(t) <= high]
        return self._short_cache[pool_name]

    def url(self, page: Page, template: Template, rng) -> str:
        when = datetime.fromtimestamp(page.date, UTC)
        pattern = _URL_PATTERNS[sum(template.host.encode()) % len(_URL_PATTERNS)]
        ident = f"{page.index:x}{self.seed % 997:03x}"
        path = pattern.format(
            y=when.year,
            m=when.month,
            d=when.day,
            slug=slugify(page.title),
            id=ident,
            section=_SECTIONS[rng.randrange(len(_SECTIONS))],
        )
        scheme = "https" if rng.random() < 0.85 else "http"
        return f"{scheme}://{template.host}{path}"

    def non_html_url(self, page: Page, template: Template) -> str:
        ext = NON_HTML_EXTENSIONS[page.content_type]
        ident = f"{page.index:x}{self.seed % 997:03x}"
        folder = {
            "pdf": "files",
            "json": "api/v1/articles",
            "png": "images",
            "js": "static/js",
            "css": "static/css",
            "txt": "texts",
            "xml": "feeds",
        }[ext]
        return f"https://{template.host}/{folder}/{slugify(page.title)}-{ident}.{ext}"

    def utf8_declaration(self, rng) -> str:
        return _weighted(rng, self.config.utf8_declarations)[0]

    # one method per category: each fills in a page's language, charset, template and content ----------
    def clean(self, page: Page, rng, pages: list[Page]) -> None:
        self.full_page(page, rng, "en", "utf-8")
        page.declared = self.utf8_declaration(rng)

    truncated = clean

    def leaked(self, page: Page, rng, pages: list[Page]) -> None:
        self.clean(page, rng, pages)
        c = self.config
        page.leak = plan_leak(rng, c.leak_tasks, c.leak_items_per_task, c.leak_fragment_share)

    def non_english(self, page: Page, rng, pages: list[Page]) -> None:
        self.full_page(page, rng, rng.choice(self.languages) if self.languages else "en", "utf-8")
        page.declared = self.utf8_declaration(rng)

    def legacy_charset(self, page: Page, rng, pages: list[Page]) -> None:
        charset, language = _weighted(rng, self.config.legacy_charsets)
        if language != "en" and language not in self.languages:
            charset, language = "windows-1252", "en"
        self.full_page(page, rng, language, charset)
        page.declared = rng.choice(("header", "meta"))

    def short(self, page: Page, rng, pages: list[Page]) -> None:
        pool = self.english_pool(rng)
        candidates = self.short_paragraphs(pool)
        if not candidates:
            pool = next(name for name in self.english_pools if self.short_paragraphs(name))
            candidates = self.short_paragraphs(pool)
        page.pool, page.paragraphs = pool, (rng.choice(candidates),)
        page.title = self.material.pools[pool].title(page.paragraphs[0])
        page.language, page.charset, page.declared = "en", "utf-8", self.utf8_declaration(rng)
        page.template = rng.choice(self.templates_by_language["en"])

    def javascript_notice(self, page: Page, rng, pages: list[Page]) -> None:
        page.notice = rng.randrange(len(JAVASCRIPT_NOTICES))
        page.language, page.charset, page.declared = "en", "utf-8", self.utf8_declaration(rng)
        page.template = rng.choice(self.templates_by_language["en"])
        page.title = self.material.templates[page.template].site_name

    def non_html(self, page: Page, rng, pages: list[Page]) -> None:
        assets = self.material.assets
        page.content_type = _weighted(rng, self.config.non_html_types)[0]
        if page.content_type == "application/javascript" and not assets.scripts:
            page.content_type = "application/json"
        if page.content_type == "text/css" and not assets.styles:
            page.content_type = "application/json"
        if page.content_type == "application/javascript":
            page.asset = rng.randrange(len(assets.scripts))
        elif page.content_type == "text/css":
            page.asset = rng.randrange(len(assets.styles))
        page.pool = self.english_pool(rng)
        size = len(self.material.pools[page.pool])
        page.paragraphs = tuple(sorted(rng.sample(range(size), min(6, size))))
        page.title = self.material.pools[page.pool].title(page.paragraphs[0])
        page.template = rng.choice(self.templates_by_language["en"])
        page.charset = None if page.content_type in ("application/pdf", "image/png") else "utf-8"
        page.declared = "header" if page.charset else None

    def _copy(self, page: Page, rng, pages: list[Page]) -> Page:
        """A page that repeats an earlier clean page (its URL, or its text on another site)."""
        original = pages[rng.choice(self.clean_pages)]
        page.original = original.index
        page.language, page.charset, page.declared = original.language, original.charset, original.declared
        page.pool, page.paragraphs, page.title = original.pool, original.paragraphs, original.title
        page.template, page.url = original.template, original.url
        return original

    def recrawl(self, page: Page, rng, pages: list[Page]) -> None:
        self._copy(page, rng, pages)

    revisit = recrawl

    def near_duplicate(self, page: Page, rng, pages: list[Page]) -> None:
        original = self._copy(page, rng, pages)
        rates = self.config.near_duplicate_edit_rates
        page.edit_rate = rates[self.near_duplicates % len(rates)]  # in turn: each rate equally often
        self.near_duplicates += 1
        content = sum(self.paragraph_bytes(page.pool, page.charset)[i] for i in page.paragraphs)
        host = self.material.templates[original.template].host
        page.template = self._pick_template(rng, "en", content, page.charset, exclude_host=host)
        page.url = ""

    def plan(self, index: int, category: str, pages: list[Page], pages_total: int, files: int) -> Page:
        rng = random.Random(f"samplecrawl:{self.seed}:page:{index}")
        page = Page(
            index=index,
            file=index * files // pages_total,
            category=category,
            date=self.start + int(index * self.config.seconds_per_fetch),
        )
        getattr(self, category)(page, rng, pages)
        if not page.url:
            template = self.material.templates[page.template]
            page.url = self.non_html_url(page, template) if category == "non_html" else self.url(page, template, rng)
        if category == "clean":
            self.clean_pages.append(index)
        return page


def build_plan(material: Material, config: SampleCrawlConfig, records: int, files: int, seed: int) -> list[Page]:
    if files < 1:
        raise ValueError("files must be at least 1")
    pages_total, without_metadata = page_count(records, files)
    if pages_total < max(10, files):
        raise ValueError(
            f"{records} records in {files} files is too few: need at least {files + 3 * max(10, files)} records"
        )
    counts = largest_remainder(pages_total, dict(config.mix.__dict__))
    if counts["clean"] < 2:
        raise ValueError("the mix leaves fewer than 2 clean pages")
    counts["clean"] -= 1
    categories = [c for c, n in counts.items() for _ in range(n)]
    random.Random(f"samplecrawl:{seed}:order").shuffle(categories)
    first_clean = categories.index("clean")  # pages that repeat a clean page need one before them
    categories[0], categories[first_clean] = categories[first_clean], categories[0]
    categories.append("truncated")  # the last record of the last file

    planner = Planner(material, config, seed)
    pages: list[Page] = []
    for index, category in enumerate(categories):
        pages.append(planner.plan(index, category, pages, pages_total, files))

    # exact record count: the first few non-HTML pages (else the first pages) go without metadata
    skip = [p for p in pages if p.category == "non_html"][:without_metadata]
    skip += [p for p in pages if p.category != "truncated" and p not in skip][: without_metadata - len(skip)]
    for page in skip:
        page.with_metadata = False
    pages[-1].with_metadata = False
    return pages


# "Please enable JavaScript" notices of single-page applications and bot walls. Each is over 200
# characters, the length from which jusText judges a paragraph good on its own, so that extraction keeps it
# and cleanup's rule (contains "javascript", under 256 characters) is what removes the page.
JAVASCRIPT_NOTICES = (
    "We've detected that JavaScript is disabled in this browser. Please enable JavaScript or switch to a "
    "supported browser to continue using this site. You can see a list of supported browsers in our Help Center.",
    "We're sorry, but this site doesn't work properly without JavaScript enabled. Please enable it in your "
    "browser settings and then reload the page to continue. If you need help, see the instructions for your browser.",
    "This website requires JavaScript to run. It looks like your browser does not support JavaScript or it is "
    "turned off. Please turn on JavaScript in the settings of your browser and then try to load this page again.",
    "Please enable JavaScript and cookies to continue. Your browser is being checked before you can access "
    "the site, and this check cannot be completed while JavaScript is turned off. This may take a few seconds.",
    "You need to enable JavaScript to run this app. The page you are looking for is built with JavaScript, "
    "and it will not show anything until you allow scripts to run for this site in the settings of your browser.",
)
