"""One WARC record -> one extract row: a document, or the first reason it is dropped.

Checks, in order (the order of REASONS, which stats.json's funnel keeps):
  corrupt_record     bytes that cannot be read as a WARC record (gzip data error, no WARC header)
  truncated_record   the record ends before its Content-Length (clipped file, truncated gzip member)
  read_failed        the rest of a remote file, from this offset, that the storage kept failing to give
                     after the configured retries (dataprep/framework/inputs.py)
  not_response       not an HTTP response record (warcinfo, request, metadata, resource, revisit, ...)
  bad_http_headers   a response whose HTTP status line or headers cannot be parsed
  not_ok_status      HTTP status other than 2xx (redirects, error pages: no content of their own)
  not_html           Content-Type neither text/html nor application/xhtml+xml (without one: the payload
                     does not start like HTML)
  payload_too_large  record block over ExtractConfig.max_payload_bytes (10 MB): not read, not parsed
  empty_payload      nothing but whitespace after the HTTP headers
  decode_error       content or transfer encoding broken, or bytes no charset decodes (text/charset.py)
  extraction_error   language ID, jusText or ftfy raised on the page (the error is reported)
  empty_extraction   jusText kept fewer than ExtractConfig.min_extracted_chars characters
A kept page: decoded (text/charset.py), language-identified by CLD2 on the HTML (text/language.py), its main
text extracted by jusText with the stoplist of that language (html_text.py; language-independent mode
for languages without one, such as Japanese, Chinese and Thai), then repaired by ftfy (text/repair.py: ftfy run only on the lines it may change).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastwarc.warc import WarcRecord, WarcRecordType

from dataprep.config import ExtractConfig
from dataprep.extract.html_text import html_to_text
from dataprep.extract.payload import PayloadTooLarge, decode_content, looks_like_markup
from dataprep.extract.warc_reader import CORRUPT, TRUNCATED, RawRecord
from dataprep.framework.inputs import READ_FAILED
from dataprep.schema import doc_id, warc_origin
from dataprep.text.charset import decode_html
from dataprep.text.language import identify_language
from dataprep.text.repair import fix_text

REASONS = [
    CORRUPT,
    TRUNCATED,
    READ_FAILED,
    "not_response",
    "bad_http_headers",
    "not_ok_status",
    "not_html",
    "payload_too_large",
    "empty_payload",
    "decode_error",
    "extraction_error",
    "empty_extraction",
]
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFF = (b"<!doctype html", b"<html")


@dataclass
class ExtractRow:
    """Everything known about one input record."""

    doc_id: str
    source: str
    url: str | None
    origin: str
    in_bytes: int
    lang: str | None = None
    lang_score: float | None = None
    text: str | None = None
    drop_reason: str | None = None
    detail: str | None = None  # why a record is faulty, for stats.json
    charset_via: str | None = None  # how the page's charset was found (charset.Decoded.via)


def is_html(content_type: str | None, payload: bytes) -> bool:
    """By the HTTP Content-Type, or by the payload's first bytes when the server sent none."""
    if content_type:
        return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES
    head = payload[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(_SNIFF)


def extract_record_safely(raw: RawRecord, warc_name: str, source: str, config: ExtractConfig) -> ExtractRow:
    """extract_record, with an unexpected error on one page counted instead of failing the file."""
    try:
        return extract_record(raw, warc_name, source, config)
    except Exception as e:  # noqa: BLE001 - one bad page must not cost the other records of its file
        origin = warc_origin(warc_name, raw.offset)
        return ExtractRow(doc_id(source, origin), source, None, origin, raw.in_bytes,
                          drop_reason="extraction_error", detail=f"{type(e).__name__}: {e}")


def extract_record(raw: RawRecord, warc_name: str, source: str, config: ExtractConfig) -> ExtractRow:
    origin = warc_origin(warc_name, raw.offset)
    row = ExtractRow(doc_id(source, origin), source, None, origin, raw.in_bytes)

    def drop(reason: str, detail: str | None = None) -> ExtractRow:
        row.drop_reason, row.detail = reason, detail
        return row

    record = None
    if raw.header:
        try:
            record = WarcRecord.from_bytes(raw.data)
            row.url = record.headers.get("WARC-Target-URI")
        except (OSError, ValueError) as e:
            if not raw.fault:
                return drop(CORRUPT, f"WARC header: {e}")
    if raw.fault:
        return drop(raw.fault, raw.detail)
    if record.record_type != WarcRecordType.response or not _is_http_response(record, raw.block):
        return drop("not_response")
    over_cap = raw.block_length > config.max_payload_bytes  # read past by the reader: headers only
    try:
        # quirks_mode: headers ended by bare LF, as ClueWeb09 and old crawlers wrote them
        record.parse_http(auto_decode="none" if over_cap else "transfer", quirks_mode=True)
    except (OSError, ValueError) as e:
        return drop("bad_http_headers", str(e))
    status = record.http_headers.status_code
    if status is None:
        return drop("bad_http_headers", "no HTTP status line")
    if not 200 <= status < 300:
        return drop("not_ok_status", str(status))
    content_type = record.http_content_type
    if content_type and not is_html(content_type, b""):
        return drop("not_html")
    if over_cap:
        return drop("payload_too_large", f"{raw.block_length} bytes")
    try:
        payload = http_payload(record, raw, config.max_payload_bytes)
    except PayloadTooLarge as e:
        return drop("payload_too_large", str(e))
    except (OSError, ValueError) as e:
        return drop("decode_error", str(e))
    if not content_type and not is_html(None, payload):
        return drop("not_html")
    if not payload.strip():
        return drop("empty_payload")
    decoded = decode_html(payload, record.http_charset)
    if decoded is None:
        return drop("decode_error", "no charset decodes the page")
    row.charset_via = decoded.via
    row.lang, row.lang_score = identify_language(
        decoded.text, is_html=True, url=row.url, content_language=record.http_headers.get("Content-Language")
    )
    text = fix_text(html_to_text(decoded.text, row.lang))
    if len(text.strip()) < config.min_extracted_chars:
        return drop("empty_extraction")
    row.text = text
    return row


def http_payload(record: WarcRecord, raw: RawRecord, limit: int) -> bytes:
    """The page's bytes: transfer coding (chunked) and content coding undone. `record` is `raw` parsed with
    its HTTP headers (`parse_http`); raises PayloadTooLarge past `limit` bytes once decoded."""
    try:
        body = record.reader.read()
    except OSError:
        # A body stored de-chunked under a "Transfer-Encoding: chunked" header: take it as it is.
        plain = WarcRecord.from_bytes(raw.data)
        plain.parse_http(auto_decode="none", quirks_mode=True)
        body = plain.reader.read()
        if not looks_like_markup(body):
            raise
    return decode_content(body, record.http_headers.get("Content-Encoding"), limit)


def _is_http_response(record: WarcRecord, block: bytes) -> bool:
    """By the WARC Content-Type (application/http); by the block's first bytes when a writer left it out."""
    content_type = (record.headers.get("Content-Type") or "").lower()
    if content_type:
        return content_type.startswith("application/http")
    return block.startswith(b"HTTP/")
