"""Running one stage: its inputs checked, a finished output reused (or refused when it was made from other
inputs or config, unless asked to replace it), its files shipped to executors, its rows written.

    run_stage -> stage_rows (spark_rows.py) + write_folder (spark_folders.py)
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

from blending.stage_folder import (
    DROPPED_DIR,
    read_listing,
    read_stats,
    remove_unlisted,
    resolve,
    reusable,
    success_record,
)
from blending.stage_stats import StageStats
from dataprep import __version__
from dataprep.config import DataprepConfig
from dataprep.framework.finished_files import FinishedFiles
from dataprep.framework.inputs import describe_files
from dataprep.framework.spark_folders import FolderSpec, read_input_folders, write_folder
from dataprep.framework.spark_rows import BadInputFilesError, Tallies, stage_rows
from dataprep.framework.stage import RunContext, SourceStage, Stage, WholeDatasetStage, stage_options

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run_stage(
    stage: type[Stage],
    spark: SparkSession,
    inputs: list[str] | str,
    output: str,
    config: DataprepConfig | None = None,
    *,
    overwrite: bool = False,
    replace_changed: bool = False,
    keep_dropped: bool = False,
    log=print,
    on_reused=lambda: None,
    **options,
) -> StageStats:
    """Run one stage on `inputs` into the stage folder `output` (or reuse it); its stats.

    `options` are the stage's own options by dest name (`source="cc"`); None leaves one at its default.
    An existing output made from other inputs or config is refused, rewritten with `overwrite`, or
    rewritten with `replace_changed` (an identical one is reused then). The stage runs in a Spark session
    of its own (sharing the context): SQL settings it sets do not reach the next stage."""
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    config, plain = stage_options(stage, {k: v for k, v in options.items() if v is not None},
                                  config or DataprepConfig())
    plain = stage.prepare(config, plain)
    session = spark.newSession()
    ctx = RunContext(config, plain, inputs, spark=session, tallies=Tallies(session))
    documents, expected_in_rows = None, None
    if issubclass(stage, SourceStage):
        instance = stage(ctx)
        described = describe_files(instance.files)
    else:
        folders = read_input_folders(session, inputs)
        documents, described, expected_in_rows = folders.documents, folders.records, folders.rows
        ctx.upstream = folders.upstream
        instance = stage(ctx)
    record = success_record(stage.name, __version__, described, instance.config_hash())
    # Source stages keep each finished file's rows until their output is in place (per-file resume).
    store = FinishedFiles(output, [stage.name, __version__, instance.config_hash()], described) \
        if isinstance(instance, SourceStage) else None
    if reusable_output(output, record, overwrite, replace_changed, keep_dropped):
        log(f"{output}: complete for the same inputs and config; reused")
        on_reused()
        remove_unlisted(output)  # a killed rerun's attempt files, on object storage
        if store:
            store.remove()  # left by a run killed between its output's rename and this removal
        return StageStats.from_dict(read_stats(output))
    for path in instance.shipped_files():
        session.sparkContext.addFile(path)
    spec = FolderSpec(output, stage.name, stage.reasons, record, config.output, keep_dropped)

    def write() -> StageStats:
        frame, figures = stage_rows(instance, documents, store)
        tally = functools.cache(ctx.tallies.merged)  # once the job has run; read by both callbacks

        def expected_rows() -> int | None:
            """The input rows to account for: the input folders' (stats.json), else what the tasks tallied."""
            if expected_in_rows is not None or isinstance(instance, WholeDatasetStage):
                return expected_in_rows
            return tally().rows

        try:
            return write_folder(frame, spec, expected_rows,
                                lambda stats: instance.extras(tally(), figures, stats))
        except Exception as e:
            unreadable = _unreadable_file(e)
            if unreadable is None:
                raise
            raise unreadable from None

    if store is None:
        return write()
    with store.locked():
        finished = store.finished()
        if finished:
            log(f"{output}: {len(finished)} of {len(instance.files)} input files finished by an earlier run "
                f"({store.uri}): their stored rows are used, the files not read again")
        # The output is assembled inside the store's folder too: a killed run leaves only that folder.
        spec.work_dir = store.output_uri
        stats = write()
    store.remove()
    return stats


def reusable_output(out: str, record: dict, overwrite: bool, replace_changed: bool, keep_dropped: bool) -> bool:
    """True when OUT is complete for the same record (and holds the dropped rows when they are wanted);
    raises when it is in the way."""
    if not reusable(out, record, overwrite, replace_changed):
        return False
    listing = read_listing(out)
    if listing is not None:
        return not keep_dropped or any(name.startswith(f"{DROPPED_DIR}/") for name in listing)
    fs, root = resolve(out)
    return not keep_dropped or fs.get_file_info(f"{root}/{DROPPED_DIR}").type != pafs.FileType.NotFound


def _unreadable_file(error: Exception) -> BadInputFilesError | None:
    """A task's BadInputFilesError, which reaches the driver as the text of its Python traceback."""
    found = re.search(rf"{BadInputFilesError.__name__}: (.*)", str(error))
    if found is None:
        return None
    return BadInputFilesError(f"input file cannot be read: {found.group(1)}\n--allow-bad-files goes on without it")
