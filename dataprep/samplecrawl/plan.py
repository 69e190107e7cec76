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
from .material import Material, Pool
from .templates import Template

REQUEST_RECORDS_PER_PAGE = 3  # request, response (or revisit), metadata
# Bytes a page adds around its content (title, heading, charset declaration), kept clear of the size bounds.
SIZE_MARGIN = 1_200
MIN_PARAGRAPHS = 3
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
        pool = self.material.pools[pool_name]
        sizes = self.paragraph_bytes(pool_name, charset)
        drawn = rng.sample(range(len(pool)), min(len(pool), 400))
        chosen, total = [], 0
        for i in drawn:
            if len(chosen) >= MIN_PARAGRAPHS and total + sizes[i] > budget:
                if total >= 0.8 * budget:
                    break
                continue
            chosen.append(i)
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
        content = sum(self.paragraph_bytes(pool_name, charset)[i] for i in page.paragraphs)
        page.template = self._pick_template(rng, language, content, charset)
        page.pool = pool_name
        page.language = language
        page.charset = charset
        page.title = self.material.pools[pool_name].title(page.paragraphs[0])

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


def build_plan(material: Material, config: SampleCrawlConfig, records: int, files: int, seed: int) -> list[Page]:
    if files < 1:
        raise ValueError("files must be at least 1")
    pages_total, without_metadata = page_count(records, files)
    if pages_total < max(10, files):
        raise ValueError(
            f"{records} records in {files} files is too few: need at least {files + 3 * max(10, files)} records"
        )
    planner = Planner(material, config, seed)
    shares = {k: v for k, v in config.mix.__dict__.items()}
    counts = largest_remainder(pages_total, shares)
    if counts["clean"] < 2:
        raise ValueError("the mix leaves fewer than 2 clean pages")
    counts["clean"] -= 1
    order_rng = random.Random(f"samplecrawl:{seed}:order")
    categories = [c for c, n in counts.items() for _ in range(n)]
    order_rng.shuffle(categories)
    first_clean = categories.index("clean")
    categories[0], categories[first_clean] = categories[first_clean], categories[0]
    categories.append("truncated")

    pages: list[Page] = []
    clean_pages: list[int] = []
    near_duplicates = 0
    for index, category in enumerate(categories):
        rng = random.Random(f"samplecrawl:{seed}:page:{index}")
        page = Page(
            index=index,
            file=index * files // pages_total,
            category=category,
            date=planner.start + int(index * config.seconds_per_fetch),
        )
        if category in ("clean", "truncated"):
            planner.full_page(page, rng, "en", "utf-8")
            page.declared = planner.utf8_declaration(rng)
        elif category == "non_english":
            language = rng.choice(planner.languages) if planner.languages else "en"
            planner.full_page(page, rng, language, "utf-8")
            page.declared = planner.utf8_declaration(rng)
        elif category == "legacy_charset":
            charset, language = _weighted(rng, config.legacy_charsets)
            if language != "en" and language not in planner.languages:
                charset, language = "windows-1252", "en"
            planner.full_page(page, rng, language, charset)
            page.declared = rng.choice(("header", "meta"))
        elif category == "short":
            pool = planner.english_pool(rng)
            candidates = planner.short_paragraphs(pool) or [
                i for name in planner.english_pools for i in planner.short_paragraphs(name)
            ]
            page.pool, page.paragraphs = pool, (rng.choice(candidates),)
            page.language, page.charset, page.declared = "en", "utf-8", planner.utf8_declaration(rng)
            page.template = rng.choice(planner.templates_by_language["en"])
            page.title = material.pools[pool].title(page.paragraphs[0])
        elif category == "javascript_notice":
            page.notice = rng.randrange(len(JAVASCRIPT_NOTICES))
            page.language, page.charset, page.declared = "en", "utf-8", planner.utf8_declaration(rng)
            page.template = rng.choice(planner.templates_by_language["en"])
            page.title = material.templates[page.template].site_name
        elif category == "non_html":
            page.content_type = _weighted(rng, config.non_html_types)[0]
            if page.content_type == "application/javascript" and not material.assets.scripts:
                page.content_type = "application/json"
            if page.content_type == "text/css" and not material.assets.styles:
                page.content_type = "application/json"
            pool = planner.english_pool(rng)
            page.pool = pool
            page.paragraphs = tuple(
                sorted(rng.sample(range(len(material.pools[pool])), min(6, len(material.pools[pool]))))
            )
            page.title = material.pools[pool].title(page.paragraphs[0])
            page.template = rng.choice(planner.templates_by_language["en"])
            if page.content_type == "application/javascript":
                page.asset = rng.randrange(len(material.assets.scripts))
            elif page.content_type == "text/css":
                page.asset = rng.randrange(len(material.assets.styles))
            page.charset = None if page.content_type in ("application/pdf", "image/png") else "utf-8"
            page.declared = "header" if page.charset else None
        elif category in ("recrawl", "revisit", "near_duplicate"):
            original = pages[rng.choice(clean_pages)]
            page.original = original.index
            page.language, page.charset, page.declared = original.language, original.charset, original.declared
            page.pool, page.paragraphs, page.title = original.pool, original.paragraphs, original.title
            if category == "near_duplicate":
                rates = config.near_duplicate_edit_rates
                page.edit_rate = rates[near_duplicates % len(rates)]
                near_duplicates += 1
                content = sum(planner.paragraph_bytes(page.pool, page.charset)[i] for i in page.paragraphs)
                exclude = material.templates[original.template].host
                page.template = planner._pick_template(rng, "en", content, page.charset, exclude_host=exclude)
            else:
                page.template = original.template
                page.url = original.url
        else:
            raise ValueError(f"unknown category {category}")

        if not page.url:
            template = material.templates[page.template]
            if category == "non_html":
                page.url = planner.non_html_url(page, template)
            else:
                page.url = planner.url(page, template, rng)
        if category == "clean":
            clean_pages.append(index)
        pages.append(page)

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
