"""The cleanup stage: a stage folder's documents -> the same documents, ftfy'd where not yet done,
each kept or dropped by the first heuristic that applies (heuristics.py).

ftfy runs unless the input was written by extract, which already ran it on every page.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from dataprep import cli
from dataprep.cleanup.heuristics import REASONS, cleanup_reason, fix_text, seed_langdetect
from dataprep.config import CleanupConfig, DataprepConfig, config_hash
from dataprep.file_stage import Summaries, Summary, histogram, partition_unit, write_stage
from dataprep.schema import DROP_REASON, IN_BYTES
from dataprep.stage_output import SUCCESS, StageOutput, read_stage_output, resolve
from dataprep.stats import StageStats

STAGE = "cleanup"
HELP = "ftfy and the paper's heuristics (non_english, javascript_notice, too_short) on any source"
STAGES_WITH_FTFY = frozenset({"extract"})


def input_stage(folder: str) -> str:
    fs, root = resolve(folder)
    with fs.open_input_stream(f"{root}/{SUCCESS}") as f:
        return json.loads(f.read())["stage"]


class Cleaner:
    """mapInArrow function: every document with its drop reason, the text ftfy'd when asked."""

    def __init__(self, config: CleanupConfig, run_ftfy: bool, schema: pa.Schema, summaries: Summaries):
        self.config = config
        self.run_ftfy = run_ftfy
        self.schema = schema
        self.summaries = summaries

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        seed_langdetect(self.config.langdetect_seed)  # in every worker, before its first detection
        summary = Summary()  # by (drop reason, langdetect's language)
        for batch in batches:
            texts = batch.column("text").to_pylist()
            fixed, reasons, sizes = [], [], []
            for text in texts:
                text = text or ""
                sizes.append(len(text.encode()))
                text = fix_text(text) if self.run_ftfy else text
                reason, language = cleanup_reason(text, self.config)
                fixed.append(text)
                reasons.append(reason)
                summary.add((reason, language))
            columns = {name: batch.column(name) for name in batch.schema.names}
            columns["text"] = pa.array(fixed, pa.string())
            columns[DROP_REASON] = pa.array(reasons, pa.string())
            columns[IN_BYTES] = pa.array(sizes, pa.int64())
            yield pa.RecordBatch.from_arrays([columns[f.name] for f in self.schema], schema=self.schema)
        self.summaries.record(partition_unit(), summary)


def summarize(summary: Summary) -> dict:
    """stats.json `extra`: langdetect's languages of the kept and of the non_english documents."""
    counts = summary.counts.items()
    return {
        "langdetect_kept": histogram([(lang, n) for (reason, lang), n in counts if reason is None]),
        "langdetect_dropped": histogram([(lang, n) for (reason, lang), n in counts if reason == "non_english"]),
    }


def run_cleanup(
    spark: SparkSession,
    input_folder: str,
    output: str,
    config: DataprepConfig,
    overwrite: bool = False,
    keep_dropped: bool = False,
) -> StageStats:
    documents, inputs = read_stage_output(spark, input_folder)
    run_ftfy = input_stage(input_folder) not in STAGES_WITH_FTFY
    out = StageOutput(output, STAGE, inputs, config_hash(config.cleanup, config.output, run_ftfy), overwrite)
    if out.reusable():
        print(f"{output}: complete for the same inputs and config; reused")
        return out.load_stats()
    spark_schema = T.StructType(
        documents.schema.fields + [T.StructField(DROP_REASON, T.StringType()), T.StructField(IN_BYTES, T.LongType())]
    )
    arrow_schema = to_arrow_schema(spark_schema, timezone="UTC")
    summaries = Summaries(spark)
    frame = documents.mapInArrow(Cleaner(config.cleanup, run_ftfy, arrow_schema, summaries), spark_schema)
    return write_stage(frame, summaries, out, config.output, REASONS, keep_dropped, summarize)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli.add_common_arguments(parser, input_help="a stage output folder (extract's or ingest's)")
    parser.add_argument("--languages", help='languages to keep: "en" (default), a list "en,de", or "all"')


def main(args: argparse.Namespace) -> int:
    config = cli.load_config(args)
    if args.languages:
        config.cleanup.languages = tuple(code.strip() for code in args.languages.split(",") if code.strip())
    if len(args.input) != 1:
        raise SystemExit("cleanup reads one stage folder: --input DIR")
    with cli.spark_session(args, STAGE) as spark:
        stats = run_cleanup(spark, args.input[0], args.output, config, args.overwrite, args.keep_dropped)
    cli.report(stats, args.output)
    return 0
