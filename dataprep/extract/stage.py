"""The extract stage: WARC files -> one row per WARC record, a document or the reason it was dropped.

One Spark task per file reads it with the fault-counting reader and runs `extract_record` on each
record; everything is decided by those plain functions. A file that cannot be opened, or holds no
WARC record at all, is a bad file: named in the error (or, with --allow-bad-files, in stats.json).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import SparkSession

from dataprep import cli
from dataprep.config import DataprepConfig, ExtractConfig, config_hash
from dataprep.extract.record import REASONS, extract_record_safely
from dataprep.extract.warc_reader import CORRUPT, TRUNCATED, read_warc
from dataprep.file_stage import (
    Summaries,
    Summary,
    bad_file_row,
    faults_listed,
    histogram,
    rows_from_files,
    write_stage,
)
from dataprep.inputs import COMMON_CRAWL_BASE, basename, describe_files, expand_inputs, open_input
from dataprep.schema import DOCUMENT_FIELDS, DROP_REASON, IN_BYTES
from dataprep.stage_output import StageOutput
from dataprep.stats import StageStats

STAGE = "extract"
HELP = "WARC files -> documents (jusText, pycld2, ftfy), every record accounted for"
DEFAULT_SOURCE = "common-crawl"
FAULT_REASONS = frozenset({CORRUPT, TRUNCATED, "bad_http_headers", "decode_error", "extraction_error"})

ROW_SCHEMA = pa.schema(list(DOCUMENT_FIELDS) + [pa.field(DROP_REASON, pa.string()), pa.field(IN_BYTES, pa.int64())])


class WarcFileExtractor:
    """The rows of one WARC file (runs in a Spark task, or in a plain loop)."""

    def __init__(self, source: str, config: ExtractConfig):
        self.source = source
        self.config = config

    def __call__(self, path: str) -> Iterator[dict]:
        try:
            f = open_input(path)
        except OSError as e:
            yield bad_file_row(path, e)
            return
        name = basename(path)
        held: list[dict] = []  # rows before the first real record: a file without one is a bad file
        found_record = False
        try:
            with f:
                for raw in read_warc(f, self.config.max_payload_bytes):
                    out = self._row(raw, name)
                    if found_record:
                        yield out
                        continue
                    held.append(out)
                    if raw.header:
                        found_record = True
                        yield from held
                        held = []
        except OSError as e:  # the storage failed under us: the rows read so far stay, the file is named
            yield bad_file_row(path, f"read error: {e}")
            return
        if not found_record:
            yield bad_file_row(path, "no WARC record in the file")

    def _row(self, raw, name: str) -> dict:
        row = extract_record_safely(raw, name, self.source, self.config)
        return {
            **{k: getattr(row, k) for k in ("doc_id", "source", "url", "origin", "lang", "lang_score", "text")},
            DROP_REASON: row.drop_reason,
            IN_BYTES: row.in_bytes,
            "_detail": row.detail,
            "_charset_via": row.charset_via,
        }


def describe(row: dict) -> tuple[tuple, tuple[str, str, str] | None]:
    """A row's summary key (drop reason, language, how the charset was found) and its fault, if any."""
    reason = row[DROP_REASON]
    fault = (row["origin"], reason, row["_detail"]) if reason in FAULT_REASONS else None
    return (reason, row["lang"], row["_charset_via"]), fault


def summarize(summary: Summary) -> dict:
    """stats.json `extra`: unreadable files, languages of the kept documents, how charsets were found,
    the first faulty records."""
    return {
        "bad_files": summary.bad_files,
        "languages": histogram([(lang, n) for (reason, lang, _via), n in summary.counts.items() if reason is None]),
        "charset_found_by": histogram([(via, n) for (_r, _l, via), n in summary.counts.items() if via is not None]),
        "faults": faults_listed(summary),
    }


def run_extract(
    spark: SparkSession,
    inputs: list[str],
    output: str,
    config: DataprepConfig,
    source: str = DEFAULT_SOURCE,
    base: str = COMMON_CRAWL_BASE,
    max_files: int | None = None,
    overwrite: bool = False,
    keep_dropped: bool = False,
    allow_bad_files: bool = False,
) -> StageStats:
    files = expand_inputs(inputs, base, max_files)
    out = StageOutput(output, STAGE, describe_files(files), config_hash(config.extract, config.output, source), overwrite)
    if out.reusable():
        print(f"{output}: complete for the same inputs and config; reused")
        return out.load_stats()
    summaries = Summaries(spark)
    extractor = WarcFileExtractor(source, config.extract)
    frame = rows_from_files(spark, files, extractor, ROW_SCHEMA, describe, summaries, allow_bad_files)
    return write_stage(frame, summaries, out, config.output, REASONS, keep_dropped, summarize)


EPILOG = """\
Every WARC record is an input row: kept as a document, or dropped for the first reason that applies:
  corrupt_record, truncated_record, not_response, bad_http_headers, not_ok_status, not_html,
  payload_too_large, empty_payload, decode_error, extraction_error, empty_extraction
(see dataprep/extract/record.py). A page is decoded by its HTTP charset, then its <meta> charset,
then detection; CLD2 (pycld2) identifies its language; jusText extracts its text with the stoplist of
that language, or, for a language jusText has no stoplist for (Japanese, Chinese, Thai, ...), in its
language-independent mode (empty stoplist, stopword thresholds 0: paragraphs judged by length and
link density); ftfy repairs the text. stats.json names faulty records and unreadable files."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    cli.add_common_arguments(parser, input_help="WARC files: paths, globs, URIs or a Common Crawl warc.paths(.gz)")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"source name of the documents ({DEFAULT_SOURCE})")
    parser.add_argument("--base", default=COMMON_CRAWL_BASE,
                        help="what a warc.paths listing is relative to (a folder, s3a://commoncrawl/, or https://...)")
    parser.add_argument("--max-files", type=int, help="only the first N files (sorted) of the input")
    parser.add_argument("--max-payload-bytes", type=int, help="records with a larger block are dropped (10 MB)")
    parser.add_argument("--allow-bad-files", action="store_true",
                        help="go on without files that cannot be read (named in stats.json)")


def main(args: argparse.Namespace) -> int:
    config = cli.load_config(args)
    if args.max_payload_bytes:
        config.extract.max_payload_bytes = args.max_payload_bytes
    with cli.spark_session(args, STAGE) as spark:
        stats = run_extract(
            spark, args.input, args.output, config, source=args.source, base=args.base,
            max_files=args.max_files, overwrite=args.overwrite, keep_dropped=args.keep_dropped,
            allow_bad_files=args.allow_bad_files,
        )
    cli.report(stats, args.output)
    return 0
