"""A planned page as the bytes a server would send: HTML from a real template and real paragraphs, or
a PDF, PNG, JSON, CSS, JavaScript, text or RSS body."""

from __future__ import annotations

import html
import json
import random
import re
import struct
import zlib

import numpy as np

from .leaks import quote_block
from .material import Material
from .plan import JAVASCRIPT_NOTICES, Page
from .warc_records import http_date

# IANA names, as pages and servers write them.
CHARSET_LABELS = {
    "utf-8": "UTF-8",
    "windows-1252": "windows-1252",
    "iso-8859-1": "ISO-8859-1",
    "koi8-r": "KOI8-R",
    "shift_jis": "Shift_JIS",
}
SERVERS = (
    "nginx",
    "Apache",
    "cloudflare",
    "Microsoft-IIS/10.0",
    "nginx/1.18.0 (Ubuntu)",
    "Apache/2.4.41 (Ubuntu)",
    "LiteSpeed",
    "openresty",
)
MAX_TITLE_CHARS = 60


def page_rng(seed: int, page: int, purpose: str) -> random.Random:
    return random.Random(f"samplecrawl:{seed}:{purpose}:{page}")


# content text --------------------------------------------------------------------------------------------
def edit_words(paragraphs: list[str], rate: float, rng: random.Random, vocabulary: list[str]) -> tuple[list[str], int]:
    """Each word is, with probability `rate`, substituted, deleted or followed by an inserted word (one of
    the three, equally likely). Returns the edited paragraphs and the number of edits."""
    edited, edits = [], 0
    for paragraph in paragraphs:
        words = []
        for word in paragraph.split(" "):
            if rng.random() >= rate:
                words.append(word)
                continue
            edits += 1
            operation = rng.randrange(3)
            if operation == 0:
                words.append(rng.choice(vocabulary))
            elif operation == 2:
                words.extend((word, rng.choice(vocabulary)))
        edited.append(" ".join(words) if words else paragraph)
    return edited, edits


def content_paragraphs(page: Page, material: Material, seed: int) -> tuple[list[str], int]:
    """The paragraphs a page carries (a near-duplicate's edited, a leaked page's with its quote block in
    the middle), and the number of word edits."""
    pool = material.pools[page.pool] if page.pool else None
    paragraphs = [pool.texts[i] for i in page.paragraphs] if pool else []
    if page.leak is not None:
        middle = (len(paragraphs) + 1) // 2
        paragraphs.insert(middle, quote_block(page.leak, page.index))
    if page.category != "near_duplicate" or not page.edit_rate:
        return paragraphs, 0
    rng = page_rng(seed, page.index, "edit")
    vocabulary = " ".join(pool.texts[rng.randrange(len(pool))] for _ in range(20)).split()
    return edit_words(paragraphs, page.edit_rate, rng, vocabulary)


def shingles(text: str, size: int) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def jaccard(a: str, b: str, size: int) -> float:
    sa, sb = shingles(a, size), shingles(b, size)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


# HTML ----------------------------------------------------------------------------------------------------
def short_title(title: str) -> str:
    if len(title) <= MAX_TITLE_CHARS:
        return title
    return title[:MAX_TITLE_CHARS].rsplit(" ", 1)[0]


def charset_meta(page: Page) -> str:
    if page.declared not in ("both", "meta"):
        return ""
    label = CHARSET_LABELS[page.charset]
    if page.charset == "utf-8":
        return f'<meta charset="{label}">'
    return f'<meta http-equiv="Content-Type" content="text/html; charset={label}">'


def html_page(page: Page, material: Material, paragraphs: list[str]) -> str:
    template = material.templates[page.template]
    title = short_title(page.title) if page.category in ("short",) else page.title
    escaped_title = html.escape(title, quote=False)
    values = {
        "LANG": page.language or "en",
        "CHARSET_META": charset_meta(page),
        "TITLE": escaped_title + (f" | {html.escape(template.site_name, quote=False)}" if template.site_name else ""),
        "H1": escaped_title,
    }
    if page.category == "javascript_notice":
        notice = html.escape(JAVASCRIPT_NOTICES[page.notice], quote=False)
        wrapper = "noscript" if page.index % 2 else 'div class="js-disabled"'
        values["TITLE"] = html.escape(template.site_name, quote=False)
        values["CONTENT"] = (
            f'<{wrapper}><p>{notice}</p></{wrapper.split()[0]}>\n<div id="root"></div>\n'
            f'<script src="/static/js/main.{page.index:08x}.js"></script>\n'
        )
        return template.render(values, bare=True)
    body = "".join(f"<p>{html.escape(p, quote=False)}</p>\n" for p in paragraphs)
    if page.category == "short":
        values["CONTENT"] = f"<h1>{escaped_title}</h1>\n{body}"
        return template.render(values, bare=True)
    values["CONTENT"] = body if template.has_h1 else f"<h1>{escaped_title}</h1>\n{body}"
    return template.render(values)


# non-HTML bodies -----------------------------------------------------------------------------------------
def _pdf_string(text: str) -> str:
    text = text.encode("latin-1", "replace").decode("latin-1")
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def pdf_bytes(title: str, paragraphs: list[str]) -> bytes:
    """A one-page PDF 1.4 with the text in a Flate-compressed content stream and a valid xref table."""
    lines = []
    for paragraph in paragraphs:
        words, line = paragraph.split(), ""
        for word in words:
            if len(line) + len(word) > 90:
                lines.append(line)
                line = ""
            line = f"{line} {word}".strip()
        lines += [line, ""]
    lines = lines[:48]
    text_ops = "BT /F1 10 Tf 72 740 Td 13 TL " + " ".join(f"{_pdf_string(ln)} '" for ln in lines) + " ET"
    stream = zlib.compress(text_ops.encode("latin-1", "replace"), 6)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title " + _pdf_string(title).encode("latin-1") + b" >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(rng: random.Random) -> bytes:
    """An RGB PNG: a colour gradient with noise, which compresses like a photo thumbnail."""
    width, height = rng.randrange(48, 200), rng.randrange(48, 160)
    noise = np.random.default_rng(rng.getrandbits(64)).integers(0, 32, (height, width, 3), dtype=np.uint16)
    y, x = np.mgrid[0:height, 0:width]
    channels = [(rng.randrange(256) + x * (c + 1) + y * (3 - c)) for c in range(3)]
    pixels = ((np.stack(channels, axis=-1) + noise) & 0xFF).astype(np.uint8)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, width * 3)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )


def non_html_body(page: Page, material: Material, paragraphs: list[str], seed: int) -> bytes:
    kind = page.content_type
    if kind == "application/pdf":
        return pdf_bytes(page.title, paragraphs)
    if kind == "image/png":
        return png_bytes(page_rng(seed, page.index, "png"))
    if kind == "application/javascript":
        return material.assets.scripts[page.asset].encode()
    if kind == "text/css":
        return material.assets.styles[page.asset].encode()
    if kind == "text/plain":
        return (page.title + "\n\n" + "\n\n".join(paragraphs) + "\n").encode()
    if kind == "application/json":
        document = {
            "id": page.index,
            "url": page.url,
            "title": page.title,
            "published": http_date(page.date - 86_400),
            "paragraphs": paragraphs,
        }
        return json.dumps(document, ensure_ascii=False).encode()
    if kind == "application/rss+xml":
        host = page.url.split("/")[2]
        items = "".join(
            f"<item><title>{html.escape(p[:60])}</title><link>https://{host}/item/{page.index}-{i}</link>"
            f"<description>{html.escape(p[:240])}</description><pubDate>{http_date(page.date - i * 3600)}</pubDate></item>\n"
            for i, p in enumerate(paragraphs)
        )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
            f"<title>{html.escape(host)}</title><link>https://{host}/</link>"
            f"<description>{html.escape(page.title)}</description>\n{items}</channel></rss>\n"
        ).encode()
    raise ValueError(f"no renderer for {kind}")


# HTTP --------------------------------------------------------------------------------------------------
def payload(page: Page, material: Material, seed: int):
    """(payload bytes, Content-Type header value, content paragraphs, word edits) of a page."""
    paragraphs, edits = content_paragraphs(page, material, seed)
    if page.content_type != "text/html":
        content_type = page.content_type + ("; charset=UTF-8" if page.charset else "")
        return non_html_body(page, material, paragraphs, seed), content_type, paragraphs, edits
    text = html_page(page, material, paragraphs)
    body = text.encode(page.charset, "xmlcharrefreplace")
    content_type = "text/html"
    if page.declared in ("both", "header"):
        content_type += f"; charset={CHARSET_LABELS[page.charset]}"
    return body, content_type, paragraphs, edits


def server(page: Page) -> str:
    """The web server software of the page's site: the same for every page of a host."""
    return SERVERS[sum(page.url.split("/")[2].encode()) % len(SERVERS)]


def response_headers(page: Page, content_type: str, length: int, seed: int) -> list[tuple[str, str]]:
    rng = page_rng(seed, page.index, "headers")
    headers = [
        ("Date", http_date(page.date - 1)),
        ("Server", server(page)),
        ("Content-Type", content_type),
    ]
    if rng.random() < 0.4:
        headers.append(("Last-Modified", http_date(page.date - rng.randrange(3_600, 90 * 86_400))))
    if rng.random() < 0.5:
        headers.append(("Cache-Control", rng.choice(("max-age=600", "no-cache", "public, max-age=3600", "private"))))
    if content_type.startswith("text/html"):
        headers.append(("Vary", "Accept-Encoding"))
    headers += [("Content-Length", str(length)), ("Connection", "close")]
    return headers


def request_head(page: Page, if_modified_since: int | None = None) -> bytes:
    parts = page.url.split("/", 3)
    host, path = parts[2], "/" + (parts[3] if len(parts) > 3 else "")
    headers = [
        ("User-Agent", "dataprep-samplecrawl/1.0 (sample crawl built from real pages)"),
        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Accept-Language", "en-US,en;q=0.5"),
    ]
    if if_modified_since is not None:
        headers.append(("If-Modified-Since", http_date(if_modified_since)))
    headers += [("Accept-Encoding", "br,gzip"), ("Host", host), ("Connection", "Keep-Alive")]
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
