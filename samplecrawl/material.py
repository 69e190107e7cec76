"""The real material a sample crawl is built from: page templates and paragraph pools.

A material folder has the layout of the project's shared data folder (any part may be missing):

    html/aeb_html/*.html[.gz]          real pages -> templates (article found with the gold body)
    html/aeb_ground-truth.json[.gz]    gold article bodies -> English news pool, other-language pools
    html/trafilatura_eval/*.html[.gz]  real pages -> templates, other-language pools
    warc/*.warc[.gz]                   HTML responses of real crawls -> templates, other-language pools
    prose/gutenberg/*.txt[.gz]         books -> English books pool
    prose/wikitext-2/*.txt[.gz]        Wikipedia articles -> English Wikipedia pool
    prose/nltk_data/*.zip              speeches -> English speeches pool

The bundled default (tests/fixtures/samplecrawl) is a small copy of that folder, so a clone builds the
same crawl for the same seed. `Material.sha256` hashes every file used, for truth.json.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from fastwarc.warc import ArchiveIterator, WarcRecordType

from . import text_sources as ts
from .templates import Assets, Template, make_template

DEFAULT_MATERIAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "samplecrawl"
MAX_TEMPLATES_PER_HOST = 3

ENGLISH_POOLS = {
    "prose/gutenberg/*.txt*": ("en/books", ts.gutenberg_paragraphs),
    "prose/wikitext-2/*.txt*": ("en/wikipedia", ts.wikitext_paragraphs),
    "prose/nltk_data/*.zip": ("en/speeches", ts.speech_paragraphs),
}


@dataclass
class Pool:
    """Paragraphs of one language (and, for English, one kind of writing), in a fixed order."""

    name: str
    language: str
    texts: list[str] = field(default_factory=list)
    title_ids: list[int] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    _seen: set = field(default_factory=set, repr=False)

    def add(self, title: str, text: str) -> None:
        if text in self._seen:
            return
        self._seen.add(text)
        if not self.titles or self.titles[-1] != title:
            self.titles.append(title)
        self.title_ids.append(len(self.titles) - 1)
        self.texts.append(text)

    def title(self, index: int) -> str:
        return self.titles[self.title_ids[index]]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Material:
    root: Path
    sha256: str
    files: list[str]
    templates: list[Template]
    pools: dict[str, Pool]
    assets: Assets

    def summary(self) -> dict:
        templates_by_language: dict[str, int] = defaultdict(int)
        for template in self.templates:
            templates_by_language[template.language] += 1
        return {
            "sha256": self.sha256,
            "files": self.files,
            "templates": dict(sorted(templates_by_language.items())),
            "paragraphs": {name: len(pool) for name, pool in sorted(self.pools.items())},
            "scripts": len(self.assets.scripts),
            "styles": len(self.assets.styles),
        }


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _glob(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file())


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.I)


def decode_page(data: bytes, header_charset: str | None = None) -> str:
    """A real page as text: the HTTP header's charset, else the meta tag's, else UTF-8; bad bytes replaced."""
    candidates = [header_charset]
    meta = _META_CHARSET.search(data[:8192])
    if meta:
        candidates.append(meta.group(1).decode("ascii", "replace"))
    for charset in candidates + ["utf-8"]:
        if not charset:
            continue
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            continue
    return data.decode("utf-8", errors="replace")


def _host_from_page(page: str, fallback: str) -> str:
    for pattern in (
        r"""<link[^>]+rel=["']canonical["'][^>]*href=["']([^"']+)""",
        r"""<link[^>]+href=["']([^"']+)["'][^>]*rel=["']canonical""",
        r"""<meta[^>]+property=["']og:url["'][^>]*content=["']([^"']+)""",
    ):
        match = re.search(pattern, page, re.I)
        if match and urlsplit(match.group(1)).netloc:
            return urlsplit(match.group(1)).netloc.lower()
    return fallback


def _host_from_filename(name: str) -> str:
    """trafilatura's eval files are named after their site: 'blog.python.org.html', 'aclu.org-grades.html'."""
    stem = name.split("/")[-1].removesuffix(".gz").removesuffix(".html").split("-")[0]
    labels = stem.split(".")
    while len(labels) > 2 and len(labels[-1]) > 4:  # a trailing page name, not a top-level domain
        labels.pop()
    return ".".join(labels).lower()


@dataclass
class _RealPage:
    name: str
    url_host: str
    text: str
    gold: str | None = None


def _warc_html_pages(path: Path, name: str) -> Iterator[_RealPage]:
    """HTML 200 responses of a WARC file; the HTTP head is parsed here because old WARC versions
    (ClueWeb's 0.18, LF-only headers) defeat library HTTP parsers."""
    stream = ArchiveIterator(open(path, "rb"), record_types=WarcRecordType.response, parse_http=False)
    try:
        for number, record in enumerate(stream):
            block = record.reader.read()
            head, sep, payload = block.partition(b"\r\n\r\n")
            if not sep or b"\n\n" in head:
                head, sep, payload = block.partition(b"\n\n")
            lines = head.decode("latin-1").splitlines()
            if not lines or " 200" not in lines[0]:
                continue
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            content_type = headers.get("content-type", "")
            if "html" not in content_type.lower():
                continue
            if payload[:2] == b"\x1f\x8b":  # stored still compressed
                try:
                    payload = gzip.decompress(payload)
                except (OSError, EOFError):
                    continue
            charset = re.search(r"charset=([\w.:-]+)", content_type, re.I)
            uri = record.headers.get("WARC-Target-URI", "").strip("<>")
            yield _RealPage(
                f"{name}#{number}", urlsplit(uri).netloc.lower(), decode_page(payload, charset and charset.group(1))
            )
    except Exception:  # a clipped file ends the read; what came before is used
        return


def _html_pages(root: Path, used: list[Path]) -> Iterator[_RealPage]:
    gold_path = next(iter(_glob(root, "html/aeb_ground-truth.json*")), None)
    gold = json.loads(read_bytes(gold_path)) if gold_path else {}
    for path in _glob(root, "html/aeb_html/*.html*"):
        used.append(path)
        key = path.name.split(".")[0]
        entry = gold.get(key, {})
        host = urlsplit(entry.get("url", "")).netloc.lower() or key[:12] + ".example"
        yield _RealPage(str(path.relative_to(root)), host, decode_page(read_bytes(path)), entry.get("articleBody"))
    for path in _glob(root, "html/trafilatura_eval/*.html*"):
        used.append(path)
        page = decode_page(read_bytes(path))
        name = str(path.relative_to(root))
        yield _RealPage(name, _host_from_page(page, _host_from_filename(name)), page)
    for path in _glob(root, "warc/*.warc*"):
        used.append(path)
        yield from _warc_html_pages(path, str(path.relative_to(root)))


def _pool(pools: dict[str, Pool], name: str, language: str) -> Pool:
    if name not in pools:
        pools[name] = Pool(name, language)
    return pools[name]


def load_material(root: str | Path | None = None) -> Material:
    """Read a material folder (default: the bundled one) into templates and paragraph pools."""
    root = Path(root) if root is not None else DEFAULT_MATERIAL
    if not root.is_dir():
        raise FileNotFoundError(f"material folder not found: {root}")
    used: list[Path] = []
    pools: dict[str, Pool] = {}

    for path in _glob(root, "html/aeb_ground-truth.json*"):
        used.append(path)
        for key, entry in sorted(json.loads(read_bytes(path)).items()):
            body = entry.get("articleBody") or ""
            language = ts.language_of(body)
            if language is None:
                continue
            pool = _pool(pools, "en/news" if language == "en" else language, language)
            for title, paragraph in ts.article_paragraphs(body, entry.get("url", key)):
                if ts.keep_paragraph(paragraph, language):
                    pool.add(title, paragraph)

    for pattern, (pool_name, reader) in ENGLISH_POOLS.items():
        for path in _glob(root, pattern):
            used.append(path)
            pool = _pool(pools, pool_name, "en")
            for title, paragraph in reader(read_bytes(path)):
                pool.add(title, paragraph)

    templates: list[Template] = []
    scripts: list[str] = []
    styles: list[str] = []
    per_host: dict[str, int] = defaultdict(int)
    for page in _html_pages(root, used):
        lines = ts.visible_lines(page.text)
        language = (ts.language_of(page.gold) if page.gold else None) or ts.page_language(lines)
        if language is None:
            continue
        if language != "en" and not page.gold:
            pool = _pool(pools, language, language)
            title = next((ln for ln in lines[:3] if len(ln) < 120), page.url_host)
            for paragraph in ts.page_paragraphs(lines, language):
                pool.add(title, paragraph)
        if per_host[page.url_host] >= MAX_TEMPLATES_PER_HOST:
            continue
        template, assets = make_template(page.text, page.name, page.url_host, language, page.gold)
        scripts.extend(assets.scripts)
        styles.extend(assets.styles)
        if template is not None:
            templates.append(template)
            per_host[page.url_host] += 1

    if not any(t.language == "en" for t in templates):
        raise ValueError(f"material {root}: no usable English page template")
    if not any(name.startswith("en/") for name in pools):
        raise ValueError(f"material {root}: no English paragraphs")
    digest = hashlib.sha256()
    files = sorted({str(p.relative_to(root)) for p in used})
    for name in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
    return Material(
        root=root,
        sha256=digest.hexdigest(),
        files=files,
        templates=templates,
        pools=dict(sorted(pools.items())),
        assets=Assets(tuple(dict.fromkeys(scripts)), tuple(dict.fromkeys(styles))),
    )
