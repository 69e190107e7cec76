"""The pipeline: its stages in order, in one list, and `python -m dataprep run`, which runs them all.

Source stages (extract, ingest) make documents from files; every other stage reads the folders of the
stage before it, in this order: extract | ingest -> cleanup -> quality -> dedup -> decontaminate. A new
stage joins with one entry in STAGES.

Layout under the run's folder DIR: `DIR/<stage>/` with one source; with several, the per-document
stages (source stages and document filters) write `DIR/<source>/<stage>/`, and the first whole-dataset
stage reads all sources' folders at once into `DIR/<stage>/`. Each stage's output is kept; a stage whose
inputs, upstream records and config section are unchanged is reused, one whose differ is rerun (so a
changed config section reruns that stage and those after it). The run ends with the funnel over all
stages (`python -m reporting funnel DIR` draws it).

The run config is the YAML every stage's --config takes (DataprepConfig's sections) plus `sources:`:

    sources:
      - name: cc-2020-50                    # the `source` of its documents
        kind: extract                       # extract (WARC files) or ingest (JSONL, Parquet, text)
        inputs: [/data/cc/CC-MAIN-2020-50/warc.paths.gz]
        base: s3a://commoncrawl/            # any option of the source's stage, by its dest name
      - name: books3
        kind: ingest
        inputs: ["/data/books3/*.jsonl.zst"]
        format: jsonl
        skip: [quality]                     # per-document stages this source does not go through

`skip` is how the paper's recipe is written down: the quality classifier filters Common Crawl only, not
the curated sources (a classifier of web prose would throw away code, papers and books). A skipped stage
passes the source's documents on unchanged and counts them as kept in the funnel.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blending.stage_stats import StageStats
from blending.typed_config import check_safe_name, check_value, load_dataclass, read_mapping
from dataprep.config import DataprepConfig
from dataprep.framework.runner import run_stage
from dataprep.framework.stage import DocumentFilter, SourceStage, Stage, stage_options

# "module:class", in pipeline order; imported on use.
STAGES = [
    "dataprep.extract.stage:ExtractStage",
    "dataprep.ingest.stage:IngestStage",
    "dataprep.cleanup.stage:CleanupStage",
    "dataprep.quality.stage:QualityStage",
    "dataprep.dedup.stage:DedupStage",
    "dataprep.decontaminate.stage:DecontaminateStage",
]


def stage_class_at(entry: str) -> type[Stage]:
    module, _, attr = entry.partition(":")
    stage = getattr(importlib.import_module(module), attr)
    check_safe_name(stage.name, f"the name of stage {entry}")  # it names the stage's folder
    return stage


def all_stages() -> list[type[Stage]]:
    return [stage_class_at(entry) for entry in STAGES]


def stage_names() -> list[str]:
    return [stage.name for stage in all_stages()]


def stage_class(name: str) -> type[Stage]:
    for stage in all_stages():
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r} (stages: {', '.join(stage_names())})")


def run(stage: type[Stage] | str, spark, inputs, output: str, config: DataprepConfig | None = None,
        **kwargs) -> StageStats:
    """One stage, by class or by name: run_stage (dataprep/framework/runner.py) with its arguments."""
    return run_stage(stage_class(stage) if isinstance(stage, str) else stage, spark, inputs, output, config, **kwargs)


def source_stages() -> list[type[Stage]]:
    return [s for s in all_stages() if issubclass(s, SourceStage)]


def chain() -> list[type[Stage]]:
    """The stages after the source stages, in order."""
    return [s for s in all_stages() if not issubclass(s, SourceStage)]


def per_source_stages() -> list[str]:
    """The per-document stages a source goes through on its own, before the first whole-dataset stage."""
    return [s.name for s in itertools.takewhile(lambda s: issubclass(s, DocumentFilter), chain())]


def pipeline_line() -> str:
    """"extract | ingest -> cleanup -> ...": the order as people write it."""
    return " -> ".join([" | ".join(s.name for s in source_stages())] + [s.name for s in chain()])


def last_stage() -> str:
    """The stage whose output is curated documents, what blending reads (blending's FINAL_STAGE)."""
    return chain()[-1].name


@dataclass
class SourceSpec:
    name: str
    kind: str  # the name of a source stage
    inputs: list[str]
    options: dict[str, Any] = field(default_factory=dict)  # options of the source stage
    skip: list[str] = field(default_factory=list)  # per-document stages it does not go through


class RunConfigError(ValueError):
    pass


@dataclass
class SourceEntry:
    """The keys every `sources:` entry may have; the others are options of its stage (`kind`)."""

    name: str
    inputs: list[str]
    kind: str = "extract"
    skip: list[str] = field(default_factory=list)


def load_run_config(path: str | Path | None) -> tuple[DataprepConfig, list[SourceSpec]]:
    """DataprepConfig from the YAML's sections, and its `sources:`, checked by type before any Spark work."""
    config = DataprepConfig.load(path)
    raw = read_mapping(path).get("sources") if path else None
    if raw is None:
        return config, []
    if not isinstance(raw, list):
        raise RunConfigError(f"{path}: sources: expected a list of sources, got {raw!r}")
    sources = [source_spec(entry, f"sources[{i}]", str(path)) for i, entry in enumerate(raw)]
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise RunConfigError(f"{path}: a source name is listed twice ({names})")
    return config, sources


def source_spec(entry, key: str, path: str) -> SourceSpec:
    """One `sources:` entry: its typed keys, a safe name, a known kind and skips, its stage's options."""
    if not isinstance(entry, dict):
        raise RunConfigError(f"{path}: {key}: expected a mapping (name, kind, inputs, ...), got {entry!r}")
    typed = {k: v for k, v in entry.items() if k in SourceEntry.__dataclass_fields__}
    spec = load_dataclass(SourceEntry, typed, path, key)
    check_safe_name(spec.name, f"{path}: {key}.name")
    kinds = {s.name: s for s in source_stages()}
    if spec.kind not in kinds:
        raise RunConfigError(f"{path}: {key}.kind: {spec.kind!r} is not one of {sorted(kinds)}")
    skippable = per_source_stages()
    if not set(spec.skip) <= set(skippable):
        raise RunConfigError(f"{path}: {key}.skip: {sorted(set(spec.skip) - set(skippable))}: only the "
                             f"per-document stages can be skipped ({', '.join(skippable)})")
    options = {k: v for k, v in entry.items() if k not in typed}
    check_stage_options(kinds[spec.kind], options, f"{path}: {key}")
    return SourceSpec(spec.name, spec.kind, spec.inputs, options, spec.skip)


def check_stage_options(stage: type[Stage], options: dict[str, Any], where: str) -> None:
    """Options given in a config file, by the stage's declaration: known names, their type and choices."""
    declared = {o.dest: o for o in stage.options}
    for name, value in options.items():
        option = declared.get(name)
        if option is None:
            raise RunConfigError(f"{where}.{name}: unknown key (name, kind, inputs, skip or an option of "
                                 f"{stage.name}: {', '.join(declared)})")
        plain = "action" not in option.kwargs and "nargs" not in option.kwargs  # one value, a string by default
        kind, choices = option.kwargs.get("type", str if plain else None), option.kwargs.get("choices")
        if kind in (int, float, str):
            check_value(kind, value, f"{where}.{name}")
        if choices is not None and value not in choices:
            raise RunConfigError(f"{where}.{name}: expected one of {', '.join(map(str, choices))}, got {value!r}")


def prepare_options(config: DataprepConfig, options: dict[str, Any]) -> dict[str, Any]:
    """Every stage's `prepare` over the run's options, before any stage runs: a bad setting of the last
    stage (a missing model) stops the run before the first one starts; defaults filled in (the default
    classifier) reach every step."""
    options = dict(options)
    for stage in chain():
        declared = {o.dest for o in stage.options}
        given = {k: v for k, v in options.items() if k in declared and v is not None}
        _, plain = stage_options(stage, given, config)
        prepared = stage.prepare(config, plain)
        options.update({k: v for k, v in prepared.items() if k in declared and v is not None})
    return options


def run_pipeline(
    spark,
    sources: list[SourceSpec],
    out: str,
    config: DataprepConfig,
    options: dict[str, Any] | None = None,
    overwrite: bool = False,
    keep_dropped: bool = False,
    log=print,
    on_stage=lambda name: None,
    on_reused=lambda name: None,
) -> list[tuple[str, StageStats]]:
    """Every stage, in order, each reused when unchanged; (folder, stats) of each stage run. `on_stage(name)`
    is called as each stage starts (the cost estimate marks its CPU meter there), `on_reused(name)` when a
    stage's finished output is reused instead."""
    if not sources:
        raise RunConfigError("no sources to run the pipeline on")
    options = prepare_options(config, options or {})
    done: list[tuple[str, StageStats]] = []

    def step(stage: type[Stage], inputs: list[str], folder: str, own: dict | None = None) -> str:
        declared = {o.dest for o in stage.options}
        given = {k: v for k, v in options.items() if k in declared and v is not None}
        given.update(own or {})
        on_stage(stage.name)
        log(f"== {stage.name} -> {folder}")
        stats = run_stage(stage, spark, inputs, folder, config, overwrite=overwrite, replace_changed=True,
                    keep_dropped=keep_dropped, log=log, on_reused=lambda: on_reused(stage.name), **given)
        done.append((folder, stats))
        return folder

    def skipped(stage: type[Stage], source: SourceSpec, folder: str) -> str:
        """The source's documents pass `stage` unchanged: counted as kept, so the funnel adds up."""
        on_stage(stage.name)
        log(f"== {stage.name}: skipped for {source.name} (its `skip`); {folder} goes on")
        before = next(stats for f, stats in reversed(done) if f == folder)
        rows, size = before.out_rows, before.out_bytes
        done.append((folder, StageStats(stage.name, in_rows=rows, in_bytes=size, kept_rows=rows, kept_bytes=size,
                                        out_rows=rows, out_bytes=size, extra={"skipped_for": source.name})))
        return folder

    per_source = len(sources) > 1
    heads = []
    for source in sources:
        base = f"{out}/{source.name}" if per_source else out
        stage = stage_class(source.kind)
        folder = step(stage, source.inputs, f"{base}/{stage.name}", {**source.options, "source": source.name})
        heads.append((source, base, folder))
    for stage in chain():
        if issubclass(stage, DocumentFilter):  # per document: each source apart
            heads = [(source, base, skipped(stage, source, folder) if source and stage.name in source.skip
                      else step(stage, [folder], f"{base}/{stage.name}")) for source, base, folder in heads]
        else:  # whole-dataset: all sources at once, one line from here on
            heads = [(None, out, step(stage, [folder for _, _, folder in heads], f"{out}/{stage.name}"))]
    return done


def funnel_levels(done: list[tuple[str, StageStats]]) -> list[StageStats]:
    """One StageStats per pipeline stage, the sources' summed (extract and ingest count as one level)."""
    levels: dict[str, list[StageStats]] = {}
    kinds = {s.name for s in source_stages()}
    for _folder, stats in done:
        levels.setdefault("sources" if stats.stage in kinds else stats.stage, []).append(stats)
    combined = []
    for _level, group in levels.items():
        name = "+".join(dict.fromkeys(s.stage for s in group))
        combined.append(StageStats.combined(group, name))
    return combined


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """Every stage's own options, once each (an option's name means the same to every stage that has it);
    the source stages' --source and --format are the shorthand's."""
    seen = {"source", "format"}
    for stage in all_stages():
        for option in stage.options:
            if option.dest in seen:
                continue
            seen.add(option.dest)
            kwargs = {k: v for k, v in option.kwargs.items() if k not in ("default", "required")}
            parser.add_argument(option.flag, help=f"{stage.name}: {option.help}", dest=option.dest, **kwargs)
