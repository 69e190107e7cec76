"""Regenerate the default classifier's training texts (dataprep/quality/data/) from a shared data folder.

    python -m dataprep.quality.build_corpus --data ../shared/data [--out dataprep/quality/data]

Writes `positives.jsonl.gz`, `negatives.jsonl.gz` and the held-out set `heldout.jsonl.gz` (heldout.py:
sources none of the other two come from), one document per line: {"source": ..., "group": ..., "text": ...}
(and "label" in the held-out set). `group` is what cross-validation splits by: a book, a
speech, a Wikipedia article, a web host (all pages of one host share their boilerplate, so they stay
on one side of a split, and a page's gold article body stays with its extracted text).

Positives, curated prose:
  wikipedia  WikiText-2 valid, its tokenisation (` @-@ `, ` , `) undone, `<unk>` removed
  books      Project Gutenberg books without their licence header and footer, one document per chapter
  speeches   US inaugural addresses, State of the Union addresses before HELDOUT_SPEECHES_FROM
  articles   the article-extraction benchmark's gold article bodies in English, but of the held-out
             hosts (the paper's positives are English; the pipeline scores what cleanup kept)
Negatives, text of real crawled pages as the pipeline sees it:
  extracted  our extract stage's text (decode, CLD2, jusText, ftfy) of every HTML response in the Common
             Crawl, wget (dolma) and ClueWeb WARC files and of the article-extraction benchmark's pages
  whole-page every visible line of the same pages: what extraction without boilerplate removal gives
  boilerplate the paragraphs jusText rejects on the same pages with their markup's boilerplate left in
  The benchmark pages are articles whose gold body is a positive: of them, only the lines that are not
  the article count as negatives (`*-boilerplate`), so no sentence is labelled both ways.

Every positive source is cut to at most MAX_SOURCE_CHARS characters and every book to MAX_BOOK_CHARS
(whole paragraphs, in file order), so the shipped files stay a few MB and no source or book dominates.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import ftfy
from fastwarc.warc import WarcRecord

from dataprep.config import ExtractConfig
from dataprep.extract.html_text import boilerplate_paragraphs, html_to_text
from dataprep.extract.record import extract_record, http_payload
from dataprep.extract.warc_reader import read_warc
from dataprep.quality import source_texts as ts
from dataprep.quality.corpus import HIGH, LOW
from dataprep.quality.heldout import is_heldout_host, is_heldout_speech
from dataprep.quality.text import normalize
from dataprep.text.charset import decode_html
from dataprep.text.language import identify_language

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
MAX_SOURCE_CHARS = 900_000
MAX_BOOK_CHARS = 300_000  # the first chapters of each book
CRAWLS = {  # WARC file -> the crawl it comes from (the negatives' source name)
    "resiliparse_warcfile.warc.gz": "common-crawl",
    "whirlwind.warc.gz": "common-crawl",
    "jwarc_cc.warc.gz": "common-crawl",
    "dolma_sample-0000.warc.gz": "wget-crawl",
    "dolma_sample-0001.warc.gz": "wget-crawl",
    "resiliparse_clueweb-quirk.warc.gz": "clueweb",
}


def host_of(url: str | None, fallback: str) -> str:
    host = urlsplit((url or "").strip("<>")).netloc.lower().removeprefix("www.")
    return f"web:{host}" if host else f"web:{fallback}"


def _documents(source: str, pairs: Iterator[tuple[str, str]], prefix: str) -> Iterator[dict]:
    """(title, paragraph) pairs -> one document per title, paragraphs joined by blank lines."""
    title, paragraphs = None, []
    for next_title, paragraph in [*pairs, (None, None)]:
        if next_title != title and paragraphs:
            yield {"source": source, "group": f"{prefix}:{title}", "text": "\n\n".join(paragraphs)}
            paragraphs = []
        title = next_title
        if paragraph:
            paragraphs.append(paragraph)


def _capped(documents: Iterator[dict], max_chars: int) -> Iterator[dict]:
    total = 0
    for document in documents:
        if total >= max_chars:
            return
        total += len(document["text"])
        yield document


def book_paragraphs(data: bytes, max_chars: int) -> Iterator[tuple[str, str]]:
    """A Gutenberg book's (chapter, paragraph) pairs up to `max_chars`, without the lines around the
    licence markers that still name the project ("Produced by ...", "End of the Project Gutenberg ...")."""
    total = 0
    for chapter, paragraph in ts.gutenberg_paragraphs(data):
        if "project gutenberg" in paragraph.lower() or paragraph.startswith("Produced by"):
            continue
        if total >= max_chars:
            return
        total += len(paragraph)
        yield chapter, paragraph


def positives(data: Path) -> Iterator[dict]:
    wiki = ts.wikitext_paragraphs((data / "prose/wikitext-2/valid.txt").read_bytes())
    yield from _capped(_documents("wikipedia", wiki, "wikipedia"), MAX_SOURCE_CHARS)

    def books() -> Iterator[dict]:
        for path in sorted((data / "prose/gutenberg").glob("*.txt")):
            for document in _documents("books", book_paragraphs(path.read_bytes(), MAX_BOOK_CHARS), "chapter"):
                book = document["group"].split(":", 1)[1].split(",")[0]
                yield {**document, "group": f"book:{book}"}

    yield from _capped(books(), MAX_SOURCE_CHARS)

    def speeches() -> Iterator[dict]:
        for name in ("inaugural.zip", "state_union.zip"):
            pairs = ts.speech_paragraphs((data / "prose/nltk_data" / name).read_bytes(),
                                         lambda speech: not is_heldout_speech(speech))
            yield from _documents("speeches", pairs, "speech")

    yield from _capped(speeches(), MAX_SOURCE_CHARS)
    yield from articles(page for page in aeb_pages(data) if not is_heldout_host(page["group"]))


def articles(pages: Iterator[dict]) -> Iterator[dict]:
    for page in pages:
        if ts.language_of(page["gold"]) == "en":
            yield {"source": "articles", "group": page["group"], "text": page["gold"]}


def aeb_pages(data: Path) -> Iterator[dict]:
    truth = json.loads((data / "html/aeb_ground-truth.json").read_text(encoding="utf-8"))
    for page_id in sorted(truth):
        payload = gzip.decompress((data / "html/aeb_html" / f"{page_id}.html.gz").read_bytes())
        url = truth[page_id].get("url")
        yield {"group": host_of(url, page_id), "url": url, "payload": payload, "gold": truth[page_id]["articleBody"]}


def page_texts(payload: bytes, url: str | None, http_charset: str | None = None) -> dict[str, str]:
    """kind -> text of one HTML page: our extract stage's text (`extracted`), the whole page's visible
    text (`whole-page`), the paragraphs jusText rejects (`boilerplate`, one a line); and its `language`."""
    decoded = decode_html(payload, http_charset)
    if decoded is None:
        return {"extracted": "", "whole-page": "", "boilerplate": "", "language": ""}
    language, _ = identify_language(decoded.text, is_html=True, url=url)
    return {
        "extracted": ftfy.fix_text(html_to_text(decoded.text, language)),
        "whole-page": ftfy.fix_text("\n".join(ts.visible_lines(decoded.text))),
        "boilerplate": ftfy.fix_text("\n".join(boilerplate_paragraphs(decoded.text, language))),
        "language": language or "",
    }


def crawled_pages(data: Path) -> Iterator[tuple[str, str | None, bytes, str | None]]:
    """(crawl, url, payload, charset) of every HTML response extract keeps in the crawl WARC files."""
    config = ExtractConfig()
    for name, crawl in CRAWLS.items():
        with open(data / "warc" / name, "rb") as f:
            for raw in read_warc(f, config.max_payload_bytes):
                row = extract_record(raw, name, crawl, config)
                if row.drop_reason:
                    continue
                record = WarcRecord.from_bytes(raw.data)
                record.parse_http(auto_decode="transfer", quirks_mode=True)
                yield crawl, row.url, http_payload(record, raw, config.max_payload_bytes), record.http_charset


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    return set(zip(words, words[1:], words[2:]))


def without_article(text: str, article: str) -> str:
    """The lines of `text` that are not the article: a line most of whose word trigrams occur in the
    article (or a short line inside it) is article text."""
    article_trigrams = _trigrams(article)
    article_normalized = normalize(article)
    kept = []
    for line in text.split("\n"):
        trigrams = _trigrams(line)
        if trigrams and len(trigrams & article_trigrams) >= 0.5 * len(trigrams):
            continue
        if not trigrams and normalize(line) and normalize(line) in article_normalized:
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def page_negatives(crawl: str, group: str, texts: dict[str, str], article: str | None, kinds: tuple[str, ...]) -> Iterator[dict]:
    """One page's negatives of the given kinds; of an article page only the lines that are not the article."""
    for kind in kinds:
        text = texts[kind]
        if article is not None:
            text, kind = without_article(text, article), f"{kind}-boilerplate" if kind != "boilerplate" else kind
        if text.strip():
            yield {"source": f"{crawl}/{kind}", "group": group, "text": text}


def negatives(data: Path) -> Iterator[dict]:
    pages = [(crawl, url, payload, charset, None) for crawl, url, payload, charset in crawled_pages(data)]
    pages += [("benchmark-pages", p["url"], p["payload"], None, p["gold"]) for p in aeb_pages(data)
              if not is_heldout_host(p["group"])]
    for crawl, url, payload, charset, article in pages:
        texts = page_texts(payload, url, charset)
        yield from page_negatives(crawl, host_of(url, crawl), texts, article, ("extracted", "whole-page", "boilerplate"))


def heldout(data: Path) -> Iterator[dict]:
    """The held-out evaluation set (heldout.py): English prose and English pages' rejected paragraphs."""
    wiki = ts.wikitext_paragraphs((data / "prose/wikitext-2/test.txt").read_bytes())
    speeches = ts.speech_paragraphs((data / "prose/nltk_data/state_union.zip").read_bytes(), is_heldout_speech)
    prose = [*_documents("wikipedia", wiki, "wikipedia-test"), *_documents("speeches", speeches, "speech"),
             *articles(p for p in aeb_pages(data) if is_heldout_host(p["group"]))]
    junk = [page for page in heldout_pages(data) if page["texts"]["language"] == "en"]
    junk = [d for page in junk for d in page_negatives(page["crawl"], page["group"], page["texts"], page["article"], ("boilerplate",))]
    yield from ({**d, "label": HIGH} for d in prose)
    yield from ({**d, "label": LOW} for d in junk)


def heldout_pages(data: Path) -> Iterator[dict]:
    """The held-out benchmark hosts' pages and trafilatura's evaluation pages (whose paragraphs holding a
    snippet its gold says the main text contains are left out)."""
    for page in aeb_pages(data):
        if is_heldout_host(page["group"]):
            texts = page_texts(page["payload"], page["url"])
            yield {"crawl": "benchmark-pages", "group": page["group"], "texts": texts, "article": page["gold"]}
    evaluation = json.loads((data / "html/trafilatura_evaldata_subset.json").read_text(encoding="utf-8"))
    for url, entry in sorted(evaluation.items()):
        texts = page_texts((data / "html/trafilatura_eval" / entry["file"]).read_bytes(), url)
        lines = texts["boilerplate"].split("\n")
        texts["boilerplate"] = "\n".join(x for x in lines if not any(s in x for s in entry.get("with", [])))
        yield {"crawl": "trafilatura-pages", "group": host_of(url, entry["file"]), "texts": texts, "article": None}


def write_jsonl_gz(path: Path, documents: Iterator[dict]) -> tuple[int, int]:
    count = chars = 0
    # mtime=0: the same documents give the same bytes
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as f:
        for document in documents:
            f.write((json.dumps(document, ensure_ascii=False, sort_keys=True) + "\n").encode())
            count += 1
            chars += len(document["text"])
    return count, chars


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataprep.quality.build_corpus", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    training = {"positives": list(positives(args.data)), "negatives": list(negatives(args.data))}
    training_groups = {d["group"] for documents in training.values() for d in documents}
    held = (d for d in heldout(args.data) if d["group"] not in training_groups)  # a host on both sides stays in training
    for name, documents in (*training.items(), ("heldout", held)):
        count, chars = write_jsonl_gz(args.out / f"{name}.jsonl.gz", documents)
        print(f"{name}: {count} documents, {chars:,} characters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
