"""One WARC file of the plan: warcinfo, then request, response (or revisit) and metadata per page, each
record its own gzip member; and the truth entry of every record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pycld2

from dataprep.schema import warc_origin

from .config import CATEGORY_OUTCOMES, GENERATOR_NAME, SampleCrawlConfig, __version__
from .material import Material
from .plan import Page
from .render import CHARSET_LABELS, jaccard, page_rng, payload, request_head, response_headers, server
from .warc_records import (
    REVISIT_PROFILE,
    gzip_member,
    http_date,
    http_head,
    record,
    record_id,
    sha1_digest,
    warc_date,
    warc_fields,
)

_ISO_639_3 = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "ru": "rus", "zh": "zho", "ja": "jpn",
              "ko": "kor", "pt": "por", "it": "ita", "nl": "nld", "pl": "pol", "id": "ind", "bn": "ben"}


def languages_cld2(text: str) -> str | None:
    """Common Crawl's `languages-cld2` metadata field, from pycld2 over the HTML."""
    try:
        reliable, text_bytes, details = pycld2.detect(text.encode("utf-8", "replace"), isPlainText=False)
    except pycld2.error:
        return None
    languages = []
    for name, code, percent, score in details:
        if code == "un":
            continue
        entry = {"code": code}
        if code in _ISO_639_3:
            entry["code-iso-639-3"] = _ISO_639_3[code]
        entry.update({"text-covered": percent / 100, "score": score, "name": name})
        languages.append(entry)
    return json.dumps({"reliable": reliable, "text-bytes": text_bytes, "languages": languages}, separators=(",", ":"))


def expected_outcome(page: Page) -> tuple[str, str | None]:
    outcome, stage = CATEGORY_OUTCOMES[page.category]
    if page.category == "legacy_charset" and page.language != "en":
        return "non_english", "cleanup"
    return outcome, stage


class CrawlFile:
    """Writes one file; `entries` collects the truth entry of each record in file order."""

    def __init__(self, path: Path, index: int, pages: list[Page], material: Material, config: SampleCrawlConfig,
                 seed: int):
        self.path, self.index = path, index
        self.pages, self.material, self.config, self.seed = pages, material, config, seed
        self.handle = open(path, "wb")
        self.offset = 0
        self.sha256 = hashlib.sha256()
        self.entries: list[dict] = []
        self.warcinfo_id = record_id(seed, "warcinfo", index)

    def _write(self, headers: list[tuple[str, str]], block: bytes, entry: dict, clip: float | None = None) -> None:
        member = gzip_member(record(headers, block), self.config.gzip_level)
        if clip is not None:  # a writer killed mid-record: the gzip member stops part way
            member = member[: int(len(member) * clip)]
        self.handle.write(member)
        self.sha256.update(member)
        head = {"file": self.path.name, "offset": self.offset, "length": len(member),
                "origin": warc_origin(self.path.name, self.offset)}
        self.entries.append(head | entry)
        self.offset += len(member)

    def _ids(self, page: Page) -> tuple[str, str, str]:
        return tuple(record_id(self.seed, page.index, kind) for kind in ("request", "response", "metadata"))

    def _common(self, page: Page) -> list[tuple[str, str]]:
        ip = ".".join(str(b) for b in hashlib.sha1(page.url.split("/")[2].encode()).digest()[:4])
        return [("WARC-Warcinfo-ID", self.warcinfo_id), ("WARC-IP-Address", ip), ("WARC-Target-URI", page.url)]

    def warcinfo(self, date: int) -> None:
        info = warc_fields([
            ("isPartOf", f"{self.config.crawl_name}-{self.seed}"),
            ("publisher", GENERATOR_NAME),
            ("description", "Sample crawl built from real pages and real text; truth.json says what each record is"),
            ("software", f"{GENERATOR_NAME} {__version__}"),
            ("format", "WARC File Format 1.0"),
            ("conformsTo", "http://bibnum.bnf.fr/WARC/WARC_ISO_28500_version1_latestdraft.pdf"),
        ])
        headers = [("WARC-Type", "warcinfo"), ("WARC-Date", warc_date(date)), ("WARC-Record-ID", self.warcinfo_id),
                   ("Content-Type", "application/warc-fields"), ("WARC-Filename", self.path.name),
                   ("WARC-Block-Digest", sha1_digest(info))]
        self._write(headers, info, {"type": "warcinfo", "id": self.warcinfo_id, "url": None,
                                    "expected": "not_response", "stage": "extract"})

    def page(self, page: Page) -> None:
        request_id, response_id, metadata_id = self._ids(page)
        original = self.pages[page.original] if page.original is not None else None
        block = request_head(page, original.date if page.category == "revisit" else None)
        headers = [("WARC-Type", "request"), ("WARC-Date", warc_date(page.date)), ("WARC-Record-ID", request_id),
                   ("Content-Type", "application/http; msgtype=request"), *self._common(page),
                   ("WARC-Block-Digest", sha1_digest(block))]
        self._write(headers, block, {"type": "request", "id": request_id, "url": page.url, "page": page.index,
                                     "expected": "not_response", "stage": "extract"})

        outcome, stage = expected_outcome(page)
        entry = {"id": response_id, "url": page.url, "page": page.index, "category": page.category,
                 "expected": outcome, "stage": stage}
        if original is not None:
            entry["duplicate_of"] = {"page": original.index}
        rng = page_rng(self.seed, page.index, "fetch")
        fields = [("fetchTimeMs", str(rng.randrange(40, 900)))]
        if page.category == "revisit":
            self._revisit(page, original, request_id, entry)
        else:
            fields += self._response(page, request_id, entry, rng)

        if page.with_metadata:
            block = warc_fields(fields)
            headers = [("WARC-Type", "metadata"), ("WARC-Date", warc_date(page.date)),
                       ("WARC-Record-ID", metadata_id), ("Content-Type", "application/warc-fields"),
                       ("WARC-Warcinfo-ID", self.warcinfo_id), ("WARC-Concurrent-To", response_id),
                       ("WARC-Target-URI", page.url), ("WARC-Block-Digest", sha1_digest(block))]
            self._write(headers, block, {"type": "metadata", "id": metadata_id, "url": page.url, "page": page.index,
                                         "expected": "not_response", "stage": "extract"})

    def _revisit(self, page: Page, original: Page, request_id: str, entry: dict) -> None:
        """Common Crawl's revisit: the server answered 304 to If-Modified-Since; no payload."""
        block = http_head("HTTP/1.1 304 Not Modified",
                          [("Date", http_date(page.date - 1)), ("Server", server(page)), ("Connection", "close")])
        headers = [("WARC-Type", "revisit"), ("WARC-Date", warc_date(page.date)), ("WARC-Record-ID", entry["id"]),
                   ("Content-Type", "application/http; msgtype=response"), *self._common(page),
                   ("WARC-Concurrent-To", request_id), ("WARC-Profile", REVISIT_PROFILE),
                   ("WARC-Refers-To", record_id(self.seed, original.index, "response")),
                   ("WARC-Refers-To-Target-URI", original.url), ("WARC-Refers-To-Date", warc_date(original.date)),
                   ("WARC-Block-Digest", sha1_digest(block))]
        self._write(headers, block, {"type": "revisit"} | entry)

    def _response(self, page: Page, request_id: str, entry: dict, rng) -> list[tuple[str, str]]:
        """Write the response record; return the metadata fields that describe it."""
        body, content_type, paragraphs, edits = payload(page, self.material, self.seed)
        block = http_head("HTTP/1.1 200 OK", response_headers(page, content_type, len(body), self.seed)) + body
        mime = content_type.split(";")[0]
        headers = [("WARC-Type", "response"), ("WARC-Date", warc_date(page.date)), ("WARC-Record-ID", entry["id"]),
                   ("Content-Type", "application/http; msgtype=response"), *self._common(page),
                   ("WARC-Concurrent-To", request_id), ("WARC-Payload-Digest", sha1_digest(body)),
                   ("WARC-Block-Digest", sha1_digest(block)), ("WARC-Identified-Payload-Type", mime)]
        entry = {"type": "response"} | entry | {"content_type": mime, "payload_bytes": len(body)}
        fields = []
        if mime == "text/html":
            charset = CHARSET_LABELS[page.charset]
            entry |= {"language": page.language, "charset": charset, "charset_declared": page.declared,
                      "template": self.material.templates[page.template].name}
            fields.append(("charset-detected", charset))
            cld2 = languages_cld2(body.decode(page.charset, "replace"))
            if cld2:
                fields.append(("languages-cld2", cld2))
        if page.pool:
            text = "\n".join(paragraphs)
            entry["content"] = {"source": page.pool, "paragraphs": list(page.paragraphs), "title": page.title,
                                "chars": len(text), "sha1": hashlib.sha1(text.encode()).hexdigest()}
        if page.category == "javascript_notice":
            entry["notice"] = page.notice
        if page.leak is not None:
            entry["leak"] = page.leak
        if page.category == "near_duplicate":
            original = "\n".join(self.material.pools[page.pool].texts[i] for i in page.paragraphs)
            score = jaccard(original, text, self.config.shingle_words)
            entry |= {"edit_rate": page.edit_rate, "edits": edits, "jaccard": round(score, 4)}
            if score < self.config.jaccard_threshold:
                entry["expected"], entry["stage"] = "keep", None
        clip = 0.4 + 0.4 * rng.random() if page.category == "truncated" else None
        self._write(headers, block, entry, clip)
        return fields

    def close(self) -> dict:
        self.handle.close()
        return {"name": self.path.name, "bytes": self.offset, "sha256": self.sha256.hexdigest(),
                "records": self.entries}


def write_crawl_file(path: Path, index: int, pages: list[Page], material: Material, config: SampleCrawlConfig,
                     seed: int) -> dict:
    """Write the file holding the plan's pages of file `index`; return its name, size, hash and entries."""
    here = [p for p in pages if p.file == index]
    crawl_file = CrawlFile(path, index, pages, material, config, seed)
    crawl_file.warcinfo(here[0].date if here else 0)
    for page in here:
        crawl_file.page(page)
    return crawl_file.close()
