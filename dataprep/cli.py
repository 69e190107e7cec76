"""What every stage's command line shares: input/output, Spark master, config file, output options."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from pyspark.sql import SparkSession

from dataprep.config import DataprepConfig
from dataprep.spark import get_spark
from dataprep.stats import StageStats


def add_common_arguments(parser: argparse.ArgumentParser, input_help: str) -> None:
    parser.add_argument("--input", required=True, nargs="+", action="extend", metavar="PATH", help=input_help)
    parser.add_argument("--output", required=True, metavar="DIR", help="the stage's output folder")
    parser.add_argument("--master", help="Spark master (default: spark-submit's, else $SPARK_MASTER, else local[*])")
    parser.add_argument("--config", help="YAML overriding the paper's defaults (sections of DataprepConfig)")
    parser.add_argument("--overwrite", action="store_true", help="replace an output made from other inputs/config")
    parser.add_argument("--keep-dropped", action="store_true", help="also write dropped rows to OUT/dropped/")
    parser.add_argument("--num-buckets", type=int, help="number of output files (output.num_buckets, 16)")


def load_config(args: argparse.Namespace) -> DataprepConfig:
    config = DataprepConfig.load(args.config)
    if args.num_buckets:
        config.output.num_buckets = args.num_buckets
    return config


@contextlib.contextmanager
def spark_session(args: argparse.Namespace, stage: str) -> Iterator[SparkSession]:
    """The process's Spark session; stopped at the end if this command started it."""
    started_here = SparkSession.getActiveSession() is None
    spark = get_spark(args.master, app_name=f"dataprep-{stage}")
    try:
        yield spark
    finally:
        if started_here:
            spark.stop()


def report(stats: StageStats, output: str) -> None:
    print(stats.funnel_table())
    print(f"-> {output}")
