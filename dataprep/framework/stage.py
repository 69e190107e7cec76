"""What a stage declares and implements: three shapes, one RunContext. docs/stages.md says how to write one.

  SourceStage        input files -> document rows, one Spark task per file (extract, ingest)
  DocumentFilter     documents -> the same documents, each kept or dropped for a reason, per Arrow batch
                     (cleanup, quality)
  WholeDatasetStage  documents -> documents as one Spark DataFrame: shuffles and joins allowed, a document
                     may become several rows (dedup, decontamination)

Everything a stage computes goes back through return values: rows, a Tally of each unit of work (its named
counters), `Transformed.figures` of a whole-dataset stage, and `Extras` (stats.json's `extra` and the
output folder's extra files). The Spark wiring is in spark_rows.py, the folders in spark_folders.py.
This module does not import pyspark.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from blending.stage_stats import StageStats
from dataprep.config import DataprepConfig, config_hash
from dataprep.framework.inputs import expand_inputs
from dataprep.framework.tally import Tally
from dataprep.schema import DOCUMENT_FIELDS, DROP_REASON, IN_BYTES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


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
class RunContext:
    """What every stage shape is given: the settings, the inputs, and during a run the stage's own Spark
    session (SQL settings a stage sets there do not reach other stages) and the tallies its tasks record."""

    config: DataprepConfig  # the whole config, the stage's field options applied
    options: dict[str, Any]  # the stage's options that are not config fields, by dest
    inputs: list[str]  # as given: file patterns (source stages) or stage folders
    upstream: list[dict] = dataclasses.field(default_factory=list)  # _SUCCESS records of the input folders
    spark: SparkSession | None = None  # None outside a run (a plain loop over the per-document methods)
    tallies: Any = None  # spark_rows.Tallies during a run: what the stage's tasks tally, by unit of work

    def __getstate__(self) -> dict:
        return {**self.__dict__, "spark": None}  # tasks get the stage, never the driver's session


@dataclasses.dataclass
class Transformed:
    """A whole-dataset stage's rows, with the figures it learnt while planning them (dedup's counts)."""

    rows: DataFrame
    figures: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Extras:
    """What a stage adds to its output folder once its rows are written."""

    stats: dict = dataclasses.field(default_factory=dict)  # stats.json's `extra`
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)  # extra files, by name


class Stage:
    name: ClassVar[str]
    help: ClassVar[str]
    reasons: ClassVar[list[str]] = []
    section: ClassVar[str | None] = None
    options: ClassVar[list[Option]] = []
    columns: ClassVar[list[pa.Field]] = []
    epilog: ClassVar[str] = ""
    input_help: ClassVar[str] = "stage output folder(s); several are unioned by column name"

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    @classmethod
    def with_options(cls, config: DataprepConfig | None = None, inputs: Sequence[str] = (),
                     upstream: Sequence[dict] = (), **options) -> Stage:
        """An instance outside a run: to call its per-document methods in a plain loop."""
        config, plain = stage_options(cls, options, config or DataprepConfig())
        return cls(RunContext(config, plain, list(inputs), list(upstream)))

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
        """Local files sent once to every executor (a model); `shipped_path` finds them there."""
        return []

    def tally(self, row: dict, tally: Tally) -> None:
        """Per row (source stages and document filters): add to the unit's named counters, name a fault."""

    def extras(self, tally: Tally, figures: dict, stats: StageStats) -> Extras:
        """Once the rows are written: stats.json's `extra` and extra files, from the merged tally, the
        figures a whole-dataset stage returned and the counted stats."""
        return Extras()

    def config_hash(self) -> str:
        """What the output depends on besides its inputs: the section, the output layout, the options."""
        return config_hash(self.config, self.ctx.config.output, dict(sorted(self.opts.items())))


class SourceStage(Stage):
    """Input files -> document rows, one Spark task per file. `rows_of_file(path)` yields dicts: the document
    fields, the stage's columns, DROP_REASON, IN_BYTES; keys starting with "_" reach `tally` only."""

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


class DocumentFilter(Stage):
    """Documents -> the same documents with the stage's columns, each kept or dropped for a reason:
    `transform(batch)` (same rows, same order), then `score(batch)` (columns; names starting with "_"
    only reach `keep` and `tally`), then `keep(row)`."""

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch

    def score(self, batch: pa.RecordBatch) -> dict[str, Sequence]:
        return {}

    def keep(self, row: dict) -> str | None:
        raise NotImplementedError


class WholeDatasetStage(Stage):
    """Documents -> documents as one DataFrame. `transform` returns the rows with DROP_REASON (null: kept),
    the document columns, the stage's columns and IN_BYTES (given on the input, kept on the row that stands
    for the input row); rows that are extra pieces of one input row carry IN_ROWS 0."""

    def transform(self, documents: DataFrame) -> Transformed:
        raise NotImplementedError


# -- resources on executors ---------------------------------------------------------------------------------

_PER_WORKER: dict = {}


def per_worker(key, load):
    """`load()` once per Python worker process (Spark reuses workers across tasks): models, tables."""
    if key not in _PER_WORKER:
        _PER_WORKER[key] = load()
    return _PER_WORKER[key]


def shipped_path(path: str) -> str:
    """In a task: the local copy of a file a stage listed in shipped_files(); elsewhere: `path`."""
    try:
        from pyspark import SparkFiles

        local = SparkFiles.get(os.path.basename(path))
    except Exception:  # no SparkContext in this process: a plain loop
        return path
    return local if os.path.exists(local) else path


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
