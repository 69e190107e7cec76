"""The pipeline's stages, in order, in one list: a new stage joins it with one entry.

Source stages (extract, ingest) make documents from files; every other stage reads the folder of the
stage before it, in this order: extract | ingest -> cleanup -> quality -> dedup -> decontaminate.
"""

from __future__ import annotations

import importlib

from dataprep.stage import Stage

# "module:class", in pipeline order; imported on use.
STAGES = [
    "dataprep.extract.stage:ExtractStage",
    "dataprep.ingest.stage:IngestStage",
    "dataprep.cleanup.stage:CleanupStage",
    "dataprep.dedup.stage:DedupStage",
]


def stage_names() -> list[str]:
    return [stage_class_at(entry).name for entry in STAGES]


def stage_class_at(entry: str) -> type[Stage]:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def stage_class(name: str) -> type[Stage]:
    for entry in STAGES:
        stage = stage_class_at(entry)
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r} (stages: {', '.join(stage_names())})")
