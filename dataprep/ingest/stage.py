"""The ingest stage: an already-extracted source (JSONL, Parquet, plain text) -> document rows.

The rows are extract's document rows: `origin` is the file's basename and row number, `lang` and
`lang_score` come from CLD2 on the text (language.py, as for pages). ftfy is left to cleanup, which
runs it on every source that has not had it. One Spark task per file.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import SparkSession

from dataprep import cli
from dataprep.config import DataprepConfig, config_hash
from dataprep.extract.language import identify_language
from dataprep.file_stage import (
    Summaries,
    Summary,
    bad_file_row,
    faults_listed,
    histogram,
    rows_from_files,
    write_stage,
)
from dataprep.ingest.readers import FORMATS, REASONS, TEXT_UNITS, UnreadableFileError, read_source
from dataprep.inputs import describe_files, expand_inputs, open_input, open_random_access
from dataprep.schema import DOCUMENT_FIELDS, DROP_REASON, IN_BYTES, doc_id, line_origin
from dataprep.stage_output import StageOutput
from dataprep.stats import StageStats

STAGE = "ingest"
HELP = "already-extracted sources (JSONL, Parquet, text) -> documents, language-identified like extract's"
ROW_SCHEMA = pa.schema(list(DOCUMENT_FIELDS) + [pa.field(DROP_REASON, pa.string()), pa.field(IN_BYTES, pa.int64())])


class SourceFileReader:
    """The rows of one input file (runs in a Spark task, or in a plain loop)."""

    def __init__(self, source: str, fmt: str, text_field: str, url_field: str, unit: str):
        self.source, self.fmt, self.text_field, self.url_field, self.unit = source, fmt, text_field, url_field, unit

    def __call__(self, path: str) -> Iterator[dict]:
        try:
            f = open_random_access(path) if self.fmt == "parquet" else open_input(path, decompress=True)
        except OSError as e:
            yield bad_file_row(path, e)
            return
        try:
            with f:
                for r in read_source(f, self.fmt, self.text_field, self.url_field, self.unit):
                    yield self._row(path, r)
        except (UnreadableFileError, OSError, EOFError) as e:
            # Also a file that breaks off (a truncated .gz): its rows so far stay, the file is named.
            yield bad_file_row(path, f"{type(e).__name__}: {e}")

    def _row(self, path: str, r) -> dict:
        origin = line_origin(path, r.number)
        lang, score = identify_language(r.text) if r.text is not None else (None, None)
        return {
            "doc_id": doc_id(self.source, origin), "source": self.source, "url": r.url, "origin": origin,
            "lang": lang, "lang_score": score, "text": r.text,
            DROP_REASON: r.drop_reason, IN_BYTES: r.in_bytes, "_detail": r.detail,
        }


def describe(row: dict) -> tuple[tuple, tuple[str, str, str] | None]:
    """A row's summary key (drop reason, language) and its fault (a line that is not JSON), if any."""
    reason = row[DROP_REASON]
    fault = (row["origin"], reason, row["_detail"]) if row["_detail"] else None
    return (reason, row["lang"]), fault


def summarize(summary: Summary) -> dict:
    return {
        "bad_files": summary.bad_files,
        "languages": histogram([(lang, n) for (reason, lang), n in summary.counts.items() if reason is None]),
        "faults": faults_listed(summary),
    }


def run_ingest(
    spark: SparkSession,
    inputs: list[str],
    output: str,
    config: DataprepConfig,
    source: str,
    fmt: str,
    text_field: str = "text",
    url_field: str = "url",
    unit: str = "file",
    overwrite: bool = False,
    keep_dropped: bool = False,
    allow_bad_files: bool = False,
) -> StageStats:
    files = expand_inputs(inputs)
    reading = {"format": fmt, "text_field": text_field, "url_field": url_field, "unit": unit}
    out = StageOutput(output, STAGE, describe_files(files), config_hash(config.output, source, reading), overwrite)
    if out.reusable():
        print(f"{output}: complete for the same inputs and config; reused")
        return out.load_stats()
    summaries = Summaries(spark)
    reader = SourceFileReader(source, fmt, text_field, url_field, unit)
    frame = rows_from_files(spark, files, reader, ROW_SCHEMA, describe, summaries, allow_bad_files)
    return write_stage(frame, summaries, out, config.output, REASONS, keep_dropped, summarize)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli.add_common_arguments(parser, input_help="files of the source: paths, globs or URIs")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--source", required=True, help="the source's name (as in the blend config)")
    parser.add_argument("--text-field", default="text", help="JSON field or Parquet column of the text (text)")
    parser.add_argument("--url-field", default="url", help="JSON field or Parquet column of the URL, if any (url)")
    parser.add_argument("--unit", default="file", choices=TEXT_UNITS,
                        help="text format: a document is the whole file, a line, or a paragraph (file)")
    parser.add_argument("--allow-bad-files", action="store_true",
                        help="go on without files that cannot be read (named in stats.json)")


def main(args: argparse.Namespace) -> int:
    config = cli.load_config(args)
    with cli.spark_session(args, STAGE) as spark:
        stats = run_ingest(
            spark, args.input, args.output, config, args.source, args.format, text_field=args.text_field,
            url_field=args.url_field, unit=args.unit, overwrite=args.overwrite, keep_dropped=args.keep_dropped,
            allow_bad_files=args.allow_bad_files,
        )
    cli.report(stats, args.output)
    return 0
