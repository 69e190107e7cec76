"""The extract stage: WARC files -> one row per WARC record, a document or the reason it was dropped.

One Spark task per file reads it with the fault-counting reader and runs `extract_record` on each
record; everything is decided by those plain functions (the stage framework, dataprep/framework/, does the rest). A file that cannot be opened, or holds no
WARC record at all, is a bad file: named in the error (or, with --allow-bad-files, in stats.json). A remote
file whose storage keeps failing after the retries is not: what was read stays, the rest is one row
dropped as read_failed, and the stage goes on; stats.json counts the retries (`input_retries`).
"""

from __future__ import annotations

from collections.abc import Iterator

from blending.remote_files import RemoteReadError
from blending.stage_stats import StageStats
from dataprep.extract.record import REASONS, extract_record_safely
from dataprep.extract.warc_reader import CORRUPT, TRUNCATED, RawRecord, read_warc
from dataprep.framework.inputs import (
    COMMON_CRAWL_BASE,
    READ_FAILED,
    basename,
    expand_inputs,
    input_retries,
    open_input,
)
from dataprep.framework.spark_rows import bad_file_row, file_counts_row
from dataprep.framework.stage import Extras, Option, SourceStage
from dataprep.framework.tally import Tally
from dataprep.schema import DEFAULT_SOURCE, DROP_REASON, IN_BYTES

FAULT_REASONS = frozenset({CORRUPT, TRUNCATED, READ_FAILED, "bad_http_headers", "decode_error", "extraction_error"})


class ExtractStage(SourceStage):
    name = "extract"
    help = "WARC files -> documents (jusText, pycld2, ftfy), every record accounted for"
    reasons = REASONS
    section = "extract"
    input_help = "WARC files: paths, globs, URIs or a Common Crawl warc.paths(.gz)"
    options = [
        Option("--source", f"source name of the documents ({DEFAULT_SOURCE})", default=DEFAULT_SOURCE),
        Option("--base", "what a warc.paths listing is relative to (a folder, s3a://commoncrawl/, or https://...)",
               default=COMMON_CRAWL_BASE),
        Option("--max-files", "only the first N files (sorted) of the input", type=int),
        Option("--max-payload-bytes", "records with a larger block are dropped (10 MB)", field="max_payload_bytes",
               type=int),
        *SourceStage.options,
    ]
    epilog = """\
Every WARC record is an input row: kept as a document, or dropped for the first reason that applies
(see dataprep/extract/record.py). A page is decoded by its HTTP charset, then its <meta> charset,
then detection; CLD2 (pycld2) identifies its language; jusText extracts its text with the stoplist of
that language, or, for a language jusText has no stoplist for (Japanese, Chinese, Thai, ...), in its
language-independent mode (empty stoplist, stopword thresholds 0: paragraphs judged by length and
link density); ftfy repairs the text. stats.json names faulty records and unreadable files."""

    def input_files(self) -> list[str]:
        return expand_inputs(self.ctx.inputs, self.opts["base"], self.opts["max_files"], self.ctx.config.remote)

    def rows_of_file(self, path: str) -> Iterator[dict]:
        """The rows of one WARC file; a file without a single WARC record is a bad file. When the
        storage keeps failing after its retries, the rest of the file is one row dropped as read_failed."""
        try:
            f = open_input(path, settings=self.ctx.config.remote)
        except OSError as e:
            yield bad_file_row(path, e)
            return
        name = basename(path)
        held: list[dict] = []  # rows before the first real record: a file without one is a bad file
        found_record = False
        next_offset = 0  # where the record after the last one read starts
        try:
            with f:
                try:
                    for raw in read_warc(f, self.config.max_payload_bytes):
                        if raw.offset.isdigit():  # not "1234+56": a record inside a gzip member ends no member
                            next_offset = int(raw.offset) + raw.in_bytes
                        out = self._row(raw, name)
                        if found_record:
                            yield out
                            continue
                        held.append(out)
                        if raw.header:
                            found_record = True
                            yield from held
                            held = []
                except RemoteReadError as e:
                    yield from held
                    yield self._row(RawRecord(str(next_offset), 0, READ_FAILED, str(e)), name)
                    found_record = True
        except OSError as e:  # the storage failed under us: the rows read so far stay, the file is named
            yield file_counts_row(input_retries=input_retries(f))
            yield bad_file_row(path, f"read error: {e}")
            return
        yield file_counts_row(input_retries=input_retries(f))
        if not found_record:
            yield bad_file_row(path, "no WARC record in the file")

    def _row(self, raw, name: str) -> dict:
        row = extract_record_safely(raw, name, self.opts["source"], self.config)
        return {
            **{k: getattr(row, k) for k in ("doc_id", "source", "url", "origin", "lang", "lang_score", "text")},
            DROP_REASON: row.drop_reason,
            IN_BYTES: row.in_bytes,
            "_detail": row.detail,
            "_charset_via": row.charset_via,
        }

    def tally(self, row: dict, tally: Tally) -> None:
        """Languages of the kept documents, how charsets were found, faulty records."""
        reason = row[DROP_REASON]
        if reason is None:
            tally.count("languages", row["lang"])
        if row["_charset_via"] is not None:
            tally.count("charset_found_by", row["_charset_via"])
        if reason in FAULT_REASONS:
            tally.fault(row["origin"], reason, row["_detail"])

    def extras(self, tally: Tally, figures: dict, stats: StageStats) -> Extras:
        return Extras({
            "bad_files": tally.bad_files,
            "languages": tally.histogram("languages"),
            "charset_found_by": tally.histogram("charset_found_by"),
            "faults": tally.listed_faults(),
            "input_retries": tally.total("input_retries"),
        })
