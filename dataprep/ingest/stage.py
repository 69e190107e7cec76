"""The ingest stage: an already-extracted source (JSONL, Parquet, plain text) -> document rows.

The rows are extract's document rows: `origin` is the file's basename and row number, `lang` and
`lang_score` come from CLD2 on the text (text/language.py, as for pages). ftfy is left to cleanup, which
runs it on every source that has not had it. One Spark task per file.
"""

from __future__ import annotations

from collections.abc import Iterator

from blending.remote_files import RemoteReadError
from blending.stage_stats import StageStats
from dataprep.framework.inputs import READ_FAILED, input_retries, open_input, open_random_access
from dataprep.framework.spark_rows import bad_file_row, file_counts_row
from dataprep.framework.stage import Extras, Option, SourceStage
from dataprep.framework.tally import Tally
from dataprep.ingest.readers import FORMATS, REASONS, TEXT_UNITS, SourceRow, UnreadableFileError, read_source
from dataprep.schema import DROP_REASON, IN_BYTES, doc_id, line_origin
from dataprep.text.language import identify_language


class IngestStage(SourceStage):
    name = "ingest"
    help = "already-extracted sources (JSONL, Parquet, text) -> documents, language-identified like extract's"
    reasons = REASONS
    input_help = "files of the source: paths, globs or URIs"
    options = [
        Option("--format", "the files' format", required=True, choices=FORMATS),
        Option("--source", "the source's name (as in the blend config)", required=True),
        Option("--text-field", "JSON field or Parquet column of the text (text)", default="text"),
        Option("--url-field", "JSON field or Parquet column of the URL, if any (url)", default="url"),
        Option("--unit", "text format: a document is the whole file, a line, or a paragraph (file)",
               default="file", choices=TEXT_UNITS),
        *SourceStage.options,
    ]

    def rows_of_file(self, path: str) -> Iterator[dict]:
        """The rows of one file. When a remote file's storage keeps failing after its retries, the rest
        of the file is one row dropped as read_failed (at the row number after the last one read)."""
        fmt, settings = self.opts["format"], self.ctx.config.remote
        try:
            f = open_random_access(path, settings) if fmt == "parquet" else open_input(path, True, settings)
        except OSError as e:
            yield bad_file_row(path, e)
            return
        next_number = 0
        try:
            with f:
                for r in read_source(f, fmt, self.opts["text_field"], self.opts["url_field"], self.opts["unit"]):
                    next_number = r.number + 1
                    yield self._row(path, r)
        except RemoteReadError as e:
            yield self._row(path, SourceRow(next_number, 0, drop_reason=READ_FAILED, detail=str(e)))
        except (UnreadableFileError, OSError, EOFError) as e:
            # Also a file that breaks off (a truncated .gz): its rows so far stay, the file is named.
            yield file_counts_row(input_retries=input_retries(f))
            yield bad_file_row(path, f"{type(e).__name__}: {e}")
            return
        yield file_counts_row(input_retries=input_retries(f))

    def _row(self, path: str, r) -> dict:
        source = self.opts["source"]
        origin = line_origin(path, r.number)
        lang, score = identify_language(r.text) if r.text is not None else (None, None)
        return {
            "doc_id": doc_id(source, origin), "source": source, "url": r.url, "origin": origin,
            "lang": lang, "lang_score": score, "text": r.text,
            DROP_REASON: r.drop_reason, IN_BYTES: r.in_bytes, "_detail": r.detail,
        }

    def tally(self, row: dict, tally: Tally) -> None:
        """Languages of the kept documents; a line that is not JSON is a fault."""
        if row[DROP_REASON] is None:
            tally.count("languages", row["lang"])
        if row["_detail"]:
            tally.fault(row["origin"], row[DROP_REASON], row["_detail"])

    def extras(self, tally: Tally, figures: dict, stats: StageStats) -> Extras:
        return Extras({"bad_files": tally.bad_files, "languages": tally.histogram("languages"),
                       "faults": tally.listed_faults(), "input_retries": tally.total("input_retries")})
