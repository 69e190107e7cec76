"""The command line of every stage, built from its declaration (dataprep/framework/stage.py): the options
all stages share, then the stage's own; --help ends with its drop reasons and config section."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import textwrap
from collections.abc import Iterator

from pyspark.sql import SparkSession

from blending.spark_session import get_spark
from blending.stage_folder import InputError, OutputExistsError, read_success
from blending.stage_stats import StageStats
from blending.typed_config import check_safe_name
from blending.user_errors import COMMON_ERRORS, EXIT_BAD_INPUT, one_line
from dataprep.config import DataprepConfig
from dataprep.framework.finished_files import FolderInUseError
from dataprep.framework.inputs import check_local_patterns
from dataprep.framework.runner import run_stage
from dataprep.framework.spark_rows import BadInputFilesError
from dataprep.framework.stage import SourceStage, Stage, StageSettingsError, stage_options
from dataprep.schema import DEFAULT_SOURCE

# Errors that are the user's to fix: one line on stderr and exit status 2, no traceback.
USER_ERRORS = (*COMMON_ERRORS, BadInputFilesError, OutputExistsError, InputError, StageSettingsError,
               FolderInUseError)


def bad_input(prog: str, error: BaseException) -> int:
    print(f"{prog}: {one_line(error)}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT


def check_inputs(stage: type[Stage], inputs: list[str]) -> None:
    """Before a JVM starts: a source stage's local files exist, a stage folder's stage finished."""
    if issubclass(stage, SourceStage):
        check_local_patterns(inputs)
    else:
        for folder in inputs:
            read_success(folder)


def add_common_arguments(parser: argparse.ArgumentParser, input_help: str) -> None:
    parser.add_argument("--input", required=True, nargs="+", action="extend", metavar="PATH", help=input_help)
    parser.add_argument("--output", required=True, metavar="DIR", help="the stage's output folder")
    add_run_arguments(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """What `dataprep <stage>` and `dataprep run` share."""
    parser.add_argument("--master", help="Spark master (default: spark-submit's, else $SPARK_MASTER, else local[*])")
    parser.add_argument("--config", help="YAML overriding the paper's defaults (sections of DataprepConfig)")
    parser.add_argument("--overwrite", action="store_true", help="replace an output made from other inputs/config")
    parser.add_argument("--keep-dropped", action="store_true", help="also write dropped rows to OUT/dropped/")
    parser.add_argument("--num-buckets", type=int, help="number of output files (output.num_buckets, 16)")


def help_epilog(stage: type[Stage]) -> str:
    """--help's closing text: the stage's own, its drop reasons in order, its config section."""
    parts = [stage.epilog.rstrip()] if stage.epilog else []
    if stage.reasons:
        parts.append(textwrap.fill(", ".join(stage.reasons), 100, initial_indent="drop reasons, in the order "
                                   "they are checked: ", subsequent_indent="  "))
    if stage.section:
        defaults = dataclasses.asdict(getattr(DataprepConfig(), stage.section))
        values = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        parts.append(textwrap.fill(values, 100, initial_indent=f"config section `{stage.section}` (--config YAML), "
                                   "defaults: ", subsequent_indent="  "))
    return "\n\n".join(parts)


def add_stage_options(parser: argparse.ArgumentParser, stage: type[Stage]) -> None:
    for option in stage.options:
        kwargs = dict(option.kwargs)
        if option.field is not None:
            kwargs.pop("default", None)
        parser.add_argument(option.flag, help=option.help, dest=option.dest, **kwargs)


def stage_parser(stage: type[Stage]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m dataprep {stage.name}", description=stage.help,
                                     epilog=help_epilog(stage), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, stage.input_help)
    add_stage_options(parser, stage)
    return parser


def load_config(args: argparse.Namespace) -> DataprepConfig:
    config = DataprepConfig.load(args.config)
    if args.num_buckets:
        config.output.num_buckets = args.num_buckets
    return config


@contextlib.contextmanager
def spark_session(master: str | None, app_name: str) -> Iterator[SparkSession]:
    """The process's Spark session; stopped at the end if this command started it."""
    started_here = SparkSession.getActiveSession() is None
    spark = get_spark(master, app_name=app_name)
    try:
        yield spark
    finally:
        if started_here:
            spark.stop()


def report(stats: StageStats, output: str) -> None:
    print(stats.funnel_table())
    print(f"-> {output}")


def run_stage_command(stage: type[Stage], argv: list[str]) -> int:
    """`python -m dataprep <stage> ARGS`: parse, run, print the funnel; user errors as one line."""
    args = stage_parser(stage).parse_args(argv)
    options = {o.dest: getattr(args, o.dest) for o in stage.options}
    try:
        config = load_config(args)
        # settings checked (and defaults such as a model filled in) before a Spark session starts
        given = {k: v for k, v in options.items() if v is not None}
        options.update(stage.prepare(*stage_options(stage, given, config)))
        check_inputs(stage, args.input)
        with spark_session(args.master, f"dataprep-{stage.name}") as spark:
            stats = run_stage(stage, spark, args.input, args.output, config, overwrite=args.overwrite,
                        keep_dropped=args.keep_dropped, **options)
    except USER_ERRORS as e:
        return bad_input(f"dataprep {stage.name}", e)
    report(stats, args.output)
    return 0


def pipeline_parser() -> argparse.ArgumentParser:
    from dataprep import pipeline

    parser = argparse.ArgumentParser(
        prog="python -m dataprep run", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Run the whole pipeline: {pipeline.pipeline_line()}. Sources come from the --config's "
                    "`sources:`, or from the shorthand --input (one source).",
        epilog=pipeline.__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", required=True, metavar="DIR", help="the run's folder: DIR/<stage>/ for each stage")
    parser.add_argument("--input", nargs="+", action="extend", metavar="PATH",
                        help="shorthand for one source: its files (WARC files, unless --format)")
    parser.add_argument("--source", default=DEFAULT_SOURCE,
                        help=f"the shorthand source's name ({DEFAULT_SOURCE})")
    parser.add_argument("--format", help="the shorthand source's files are already-extracted text of this format "
                                         "(jsonl, parquet, text: the ingest stage)")
    parser.add_argument("--measure-cost", action="store_true",
                        help="write DIR/cost.json: CPU and wall seconds of the start and of each stage, memory "
                             "peaks, of this process tree (driver, JVM, Python workers: a local run's all)")
    add_run_arguments(parser)
    pipeline.add_pipeline_options(parser)
    return parser


def run_pipeline_command(argv: list[str]) -> int:
    """`python -m dataprep run ARGS`: every stage in order, then the funnel over all of them."""
    from dataprep.pipeline import (
        RunConfigError,
        SourceSpec,
        funnel_levels,
        load_run_config,
        prepare_options,
        run_pipeline,
    )

    parser = pipeline_parser()
    args = parser.parse_args(argv)
    skip = {"out", "input", "source", "format", "master", "config", "overwrite", "keep_dropped", "num_buckets",
            "measure_cost"}
    options = {k: v for k, v in vars(args).items() if k not in skip}
    try:
        config, sources = load_run_config(args.config)
        if args.num_buckets:
            config.output.num_buckets = args.num_buckets
        if args.input:
            kind, own = ("ingest", {"format": args.format}) if args.format else ("extract", {})
            sources.append(SourceSpec(check_safe_name(args.source, "--source"), kind, args.input, own))
        if not sources:
            parser.error("no sources: give --input FILES or a --config with `sources:`")
        options = prepare_options(config, options)  # before a Spark session starts
        for source in sources:
            check_local_patterns(source.inputs)
        with spark_session(args.master, "dataprep-run") as spark:
            run = run_pipeline
            if args.measure_cost:
                from dataprep.estimate.measure import run_measured as run
            done = run(spark, sources, args.out.rstrip("/"), config, options, overwrite=args.overwrite,
                       keep_dropped=args.keep_dropped)
    except (*USER_ERRORS, RunConfigError) as e:
        return bad_input("dataprep run", e)
    levels = funnel_levels(done)
    for stats in levels:
        print(stats.funnel_table())
    print(f"funnel plot and dropped documents: python -m reporting inspect {args.out} --html report.html")
    return 0
