"""A stage of the curation pipeline: one abstraction, three shapes, one `run()`.

A stage is a class that declares what it is (name, one-line help, drop reasons in order, config
section, options, the columns it adds) and implements the per-document logic of its shape. Everything
else is done once, here, for every stage: input checks, reuse of a finished output (refused when it was
made from other inputs or config unless `overwrite`), shipping files to executors, the accounted,
atomic write of the stage folder with stats.json and _SUCCESS, and the command line (dataprep/cli.py
builds `--help` from the declaration).

Shapes
  SourceStage        input files -> document rows, one Spark task per file (extract, ingest)
  DocumentFilter     documents -> the same documents, each kept or dropped for a reason, per Arrow batch:
                     optional `transform(batch)`, then `score(batch)` (columns), then `keep(row)` (cleanup,
                     quality)
  WholeDatasetStage  documents -> documents as one Spark DataFrame: shuffles and joins allowed, a document
                     may become several rows (dedup, decontamination)

Writing a stage
  1. A module `dataprep/<name>/stage.py` with a subclass of one shape, declaring:
       name       the stage's name: its command (`python -m dataprep <name>`), folder and stats.json stage
       help       one line for `python -m dataprep --help`
       reasons    every drop reason, in the order they are checked (stats.json and the funnel keep it)
       section    the DataprepConfig field holding its settings (dataprep/config.py), or None
       options    its own command-line options (`Option`): with `field=` an option sets that field of
                  the section; without, its value reaches the stage as `self.opts[dest]`
       columns    the pyarrow fields it adds to the document row (they stay in the output)
       epilog     (optional) more --help text
     and implementing:
       SourceStage:        rows_of_file(path) -> rows (dicts: the document fields, the stage's columns,
                           DROP_REASON, IN_BYTES; keys starting with "_" are seen by `describe` only);
                           input_files() when its inputs are not plain paths/globs
       DocumentFilter:     keep(row) -> None or a reason; optionally transform(batch) -> batch (same rows,
                           same order), score(batch) -> {column: values} (declared columns are written,
                           names starting with "_" only reach `keep` and `describe`)
       WholeDatasetStage:  transform(spark, documents) -> DataFrame with DROP_REASON (null: kept), the
                           document columns, its columns and IN_BYTES (given on the input, kept on the row
                           that stands for the input row); rows that are extra pieces of one input row
                           carry IN_ROWS 0, the others 1 (the default when the column is absent)
     and, when it needs them:
       prepare(config, options)     (classmethod) before any Spark work: check the settings, fill in
                                    defaults (a model file); StageSettingsError for one that cannot work
       setup()                      in each task before its first row: load models lazily; `per_worker`
                                    keeps one copy per Python worker, `shipped_path` finds a file listed by
                                    shipped_files() (SparkFiles) on the executor
       shipped_files() -> [paths]   local files sent once to every executor (a model)
       describe(row) -> key         per-row summary key (default: the drop reason), counted into a Summary;
       fault(row) -> (origin, reason, detail) | None   a faulty row to name in stats.json
       extra(summary, stats) -> {}  stats.json's `extra`, once the rows are written (from the per-row
                                    summary, from figures the stage gathered itself, or both)
       write_files(folder)          extra files written into the output folder before it is renamed
                                    into place (folder is the temporary one)
  2. One entry in `STAGES` (dataprep/pipeline.py), in pipeline order.
  3. Its config section in DataprepConfig, with the paper's values as defaults.
That gives `python -m dataprep <name>`, `spark-submit dataprep/jobs/stage.py <name> ...`, its place in
`python -m dataprep run`, stats.json accounting (every input row kept or dropped for exactly one declared
reason), reuse and byte-identical outputs, as long as the per-row logic is deterministic.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import os
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from dataprep import __version__
from dataprep.config import DataprepConfig, config_hash
from dataprep.file_stage import Summaries, Summary, partition_unit, rows_from_files, write_stage
from dataprep.finished_files import FinishedFiles
from dataprep.inputs import describe_files, expand_inputs
from dataprep.schema import DOCUMENT_FIELDS, DROP_REASON, IN_BYTES
from dataprep.stage_output import StageOutput, read_stage_outputs
from dataprep.stats import StageStats


class StageSettingsError(ValueError):
    """A stage's settings cannot work (a missing or unusable model file): refused before any Spark work."""


class Option:
    """A command-line option of a stage: `flag`, `help`, and argparse's keyword arguments (type, choices,
    action, nargs, default, required). With `field`, it sets config.<section>.<field> when given."""

    def __init__(self, flag: str, help: str, field: str | None = None, **kwargs):
        self.flag, self.help, self.field, self.kwargs = flag, help, field, kwargs

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def default(self) -> Any:
        if self.field is not None:
            return None
        return self.kwargs.get("default", False if self.kwargs.get("action") == "store_true" else None)


@dataclasses.dataclass
class StageContext:
    config: DataprepConfig  # the whole config, the stage's field options applied
    options: dict[str, Any]  # the stage's options that are not config fields, by dest
    inputs: list[str]  # as given: file patterns (source stages) or stage folders
    upstream: list[dict]  # the _SUCCESS records of the input folders (none for source stages)


class Stage:
    name: ClassVar[str]
    help: ClassVar[str]
    reasons: ClassVar[list[str]] = []
    section: ClassVar[str | None] = None
    options: ClassVar[list[Option]] = []
    columns: ClassVar[list[pa.Field]] = []
    epilog: ClassVar[str] = ""
    input_help: ClassVar[str] = "stage output folder(s); several are unioned by column name"

    def __init__(self, ctx: StageContext):
        self.ctx = ctx

    @classmethod
    def with_options(cls, config: DataprepConfig | None = None, inputs: Sequence[str] = (),
                     upstream: Sequence[dict] = (), **options) -> Stage:
        """An instance outside run(): to call its per-document methods in a plain loop."""
        config, plain = stage_options(cls, options, config or DataprepConfig())
        return cls(StageContext(config, plain, list(inputs), list(upstream)))

    @property
    def config(self):
        """The stage's config section (None without one)."""
        return getattr(self.ctx.config, self.section) if self.section else None

    @property
    def opts(self) -> dict[str, Any]:
        return self.ctx.options

    # -- hooks with defaults ------------------------------------------------------------------------------

    @classmethod
    def prepare(cls, config: DataprepConfig, options: dict[str, Any]) -> dict[str, Any]:
        """Before any Spark work: check the stage's options (a model file exists and loads) and fill in
        what they leave to a default; raise StageSettingsError. Returns the options to run with."""
        return options

    def setup(self) -> None:
        """Runs in each task before its first row."""

    def shipped_files(self) -> list[str]:
        return []

    def describe(self, row: dict) -> tuple:
        return (row[DROP_REASON],)

    def fault(self, row: dict) -> tuple[str, str, str] | None:
        return None

    def extra(self, summary: Summary, stats: StageStats) -> dict:
        return {}

    def write_files(self, folder: str) -> None:
        """Extra files of the output folder (`folder` is the temporary one, a local path or a URI)."""

    # -- what run() uses ----------------------------------------------------------------------------------

    def config_hash(self) -> str:
        """What the output depends on besides its inputs: the section, the output layout, the options."""
        return config_hash(self.config, self.ctx.config.output, dict(sorted(self.opts.items())))

    def rows(self, spark: SparkSession, documents: DataFrame | None, summaries: Summaries) -> DataFrame:
        raise NotImplementedError


class SourceStage(Stage):
    """Input files -> document rows, one Spark task per file."""

    input_help = "input files: paths, globs or URIs"
    options = [Option("--allow-bad-files", "go on without files that cannot be read (named in stats.json)",
                      action="store_true")]

    def input_files(self) -> list[str]:
        """The files to read, sorted (default: the inputs as paths, globs or URIs)."""
        return expand_inputs(self.ctx.inputs)

    @functools.cached_property
    def files(self) -> list[str]:
        return self.input_files()

    def rows_of_file(self, path: str) -> Iterator[dict]:
        raise NotImplementedError

    def row_schema(self) -> pa.Schema:
        return pa.schema(list(DOCUMENT_FIELDS) + list(self.columns)
                         + [pa.field(DROP_REASON, pa.string()), pa.field(IN_BYTES, pa.int64())])

    def rows(self, spark, documents, summaries, store: FinishedFiles | None = None):
        def describe(row):
            return self.describe(row), self.fault(row)

        return rows_from_files(spark, self.files, self.rows_of_file, self.row_schema(), describe, summaries,
                               self.opts.get("allow_bad_files", False), store)


class DocumentFilter(Stage):
    """Documents -> the same documents with the stage's columns, each kept or dropped for a reason."""

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch

    def score(self, batch: pa.RecordBatch) -> dict[str, Sequence]:
        return {}

    def keep(self, row: dict) -> str | None:
        raise NotImplementedError

    def rows(self, spark, documents, summaries):
        added = {f.name for f in self.columns} | {DROP_REASON, IN_BYTES}
        fields = [f for f in to_arrow_schema(documents.schema, timezone="UTC") if f.name not in added]
        schema = pa.schema(fields + list(self.columns)
                           + [pa.field(DROP_REASON, pa.string()), pa.field(IN_BYTES, pa.int64())])
        documents = documents.select(*[f.name for f in fields])
        return documents.mapInArrow(_FilterTask(self, schema, summaries), from_arrow_schema(schema))


class _FilterTask:
    """mapInArrow function of a DocumentFilter: transform, score, keep, per batch."""

    def __init__(self, stage: DocumentFilter, schema: pa.Schema, summaries: Summaries):
        self.stage, self.schema, self.summaries = stage, schema, summaries

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stage = self.stage
        stage.setup()
        summary = Summary()
        for batch in batches:
            in_bytes = pc.binary_length(batch.column("text")).fill_null(0).cast(pa.int64())
            batch = stage.transform(batch)
            scores = {name: _pylist(values) for name, values in stage.score(batch).items()}
            rows = batch.to_pylist()
            reasons = []
            for i, row in enumerate(rows):
                for name, values in scores.items():
                    row[name] = values[i]
                row[DROP_REASON] = reason = stage.keep(row)
                reasons.append(reason)
                summary.add(stage.describe(row), stage.fault(row))
            columns = {name: batch.column(name) for name in batch.schema.names}
            for f in stage.columns:
                columns[f.name] = pa.array(scores[f.name], f.type)
            columns[DROP_REASON] = pa.array(reasons, pa.string())
            columns[IN_BYTES] = in_bytes
            yield pa.RecordBatch.from_arrays([columns[f.name] for f in self.schema], schema=self.schema)
        self.summaries.record(partition_unit(), summary)


def _pylist(values) -> list:
    if hasattr(values, "to_pylist"):
        return values.to_pylist()
    if hasattr(values, "tolist"):
        return values.tolist()
    return list(values)


class WholeDatasetStage(Stage):
    """Documents -> documents as one DataFrame (shuffles, joins, several rows per input document)."""

    def transform(self, spark: SparkSession, documents: DataFrame) -> DataFrame:
        raise NotImplementedError

    def rows(self, spark, documents, summaries):
        documents = documents.withColumn(IN_BYTES, F.coalesce(F.octet_length("text"), F.lit(0)).cast("long"))
        out = self.transform(spark, documents)
        missing = {DROP_REASON, IN_BYTES, "doc_id", "text"} - set(out.columns)
        if missing:
            raise ValueError(f"{self.name}: transform's result lacks the columns {sorted(missing)}")
        return out


# -- resources on executors ---------------------------------------------------------------------------------

_PER_WORKER: dict = {}


def per_worker(key, load):
    """`load()` once per Python worker process (Spark reuses workers across tasks): models, tables."""
    if key not in _PER_WORKER:
        _PER_WORKER[key] = load()
    return _PER_WORKER[key]


def shipped_path(path: str) -> str:
    """In a task: the local copy of a file a stage listed in shipped_files(); elsewhere: `path`."""
    from pyspark import SparkFiles

    try:
        local = SparkFiles.get(os.path.basename(path))
    except Exception:  # no SparkContext in this process: a plain loop
        return path
    return local if os.path.exists(local) else path


# -- running a stage ----------------------------------------------------------------------------------------


def stage_options(stage: type[Stage], given: dict[str, Any], config: DataprepConfig) -> tuple[DataprepConfig, dict]:
    """(a copy of `config` with the stage's field options applied, its other options with defaults)."""
    known = {o.dest: o for o in stage.options}
    unknown = set(given) - set(known)
    if unknown:
        raise TypeError(f"{stage.name} has no options {sorted(unknown)} (it has {sorted(known)})")
    config = copy.deepcopy(config)
    plain = {}
    for dest, option in known.items():
        value = given.get(dest, option.default())
        if option.field is None:
            plain[dest] = value
        elif value is not None:
            setattr(getattr(config, stage.section), option.field, value)
    return config, plain


def run(
    stage: type[Stage] | str,
    spark: SparkSession,
    inputs: list[str] | str,
    output: str,
    config: DataprepConfig | None = None,
    *,
    overwrite: bool = False,
    replace_changed: bool = False,
    keep_dropped: bool = False,
    log=print,
    **options,
) -> StageStats:
    """Run one stage on `inputs` into the stage folder `output` (or reuse it); its stats.

    `options` are the stage's own options by dest name (`source="cc"`); None leaves one at its default.
    An existing output made from other inputs or config is refused, rewritten with `overwrite`, or
    rewritten with `replace_changed` (an identical one is reused then)."""
    if isinstance(stage, str):
        from dataprep.pipeline import stage_class  # the pipeline imports this module

        stage = stage_class(stage)
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    config, plain = stage_options(stage, {k: v for k, v in options.items() if v is not None},
                                  config or DataprepConfig())
    plain = stage.prepare(config, plain)
    documents = None
    expected_in_rows = None
    if issubclass(stage, SourceStage):
        instance = stage(StageContext(config, plain, inputs, []))
        described = describe_files(instance.files)
    else:
        folders = read_stage_outputs(spark, inputs)
        documents, described = folders.documents, folders.records
        instance = stage(StageContext(config, plain, inputs, folders.upstream))
        expected_in_rows = folders.rows
    out = StageOutput(output, stage.name, described, instance.config_hash(), overwrite, replace_changed, keep_dropped)
    # Source stages keep each finished file's rows until their output is in place (per-file resume).
    store = FinishedFiles(output, [stage.name, __version__, instance.config_hash()], described) \
        if isinstance(instance, SourceStage) else None
    if out.reusable():
        log(f"{output}: complete for the same inputs and config; reused")
        if store:
            store.remove()  # left by a run killed between its output's rename and this removal
        return out.load_stats()
    for path in instance.shipped_files():
        spark.sparkContext.addFile(path)
    summaries = Summaries(spark)

    def write(frame, work_dir=None):
        return write_stage(frame, summaries, out, config.output, stage.reasons, keep_dropped, instance.extra,
                           write_files=instance.write_files, expected_in_rows=expected_in_rows, work_dir=work_dir)

    if store is None:
        return write(instance.rows(spark, documents, summaries))
    with store.locked():
        finished = store.finished()
        if finished:
            log(f"{output}: {len(finished)} of {len(instance.files)} input files finished by an earlier run "
                f"({store.uri}): their stored rows are used, the files not read again")
        # The output is assembled inside the store's folder too: a killed run leaves only that folder.
        stats = write(instance.rows(spark, documents, summaries, store), work_dir=store.output_uri)
    store.remove()
    return stats


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

