"""Finding what the runs wrote: stage folders, the blend's manifest, training runs, evaluations."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from blending.stages import StageFolder, find_stage_folders

MANIFEST = "manifest.json"
ABLATION = "ablation.json"  # trainer.ablate's: its folder's shards and runs are the ablation's, not the run's
ESTIMATE = "estimate.json"  # dataprep estimate's: its folder's stage folders are the sample's, not the run's
COST = "cost.json"  # `dataprep run --measure-cost`'s: what each stage of the run cost


@dataclass
class Stage:
    label: str  # the folder's path under the roots
    stats: dict  # its stats.json
    found: StageFolder | None = None  # the folder as blending.stages reads it (None: only stats.json known)

    @property
    def name(self) -> str:
        return self.stats["stage"]

    @property
    def folder(self) -> Path:
        return self.found.path

    @property
    def dropped(self) -> int:
        return sum(self.stats["dropped"].values())


@dataclass
class Run:
    folder: Path
    label: str
    config: dict
    summary: dict
    train: list[dict]
    valid: list[dict]


@dataclass
class Report:
    roots: list[Path]
    stages: list[Stage]
    manifest: dict | None
    manifest_label: str | None
    runs: list[Run]
    evals: dict[str, dict]  # label of eval.json -> its content
    ablations: dict[str, tuple[Path, dict]] = field(default_factory=dict)  # label -> (folder, ablation.json)
    estimates: dict[str, dict] = field(default_factory=dict)  # label -> estimate.json
    costs: dict[str, dict] = field(default_factory=dict)  # label of a run's folder -> its cost.json

    @property
    def bytes_per_token(self) -> float | None:
        from reporting.funnel import bytes_per_token

        return bytes_per_token(self.stages)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def labeller(roots: list[Path]):
    """Labels of folders: their path under the roots' common folder (under the root itself when there is
    one)."""
    base = (roots[0] if len(roots) == 1 else Path(os.path.commonpath([r.resolve() for r in roots]))).resolve()

    def label(folder: Path) -> str:
        return folder.resolve().relative_to(base).as_posix()

    return label


def stages_of(folders: list[StageFolder], label) -> list[Stage]:
    """The folders that have accounting (stats.json with its figures), labelled."""
    return [Stage(label(f.path), f.stats, f) for f in folders if f.stats and "in" in f.stats]


def _folders(root: Path, out: Path):
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if ABLATION in files or ESTIMATE in files:  # reported as one section, never as stages or runs
            dirs[:] = []
        # temporary and replaced outputs, the report itself, checkpoints, caches: nothing to report
        dirs[:] = sorted(d for d in dirs if ".tmp-" not in d and ".old-" not in d and d not in
                         ("checkpoints", "index-cache", "tensorboard")
                         and (here / d).resolve() != out.resolve())
        yield here, set(files)


def collect(roots: str | Path | list, out: str | Path) -> Report:
    """What the runs under `roots` wrote (the report folder `out` left out)."""
    roots = [Path(r) for r in ([roots] if isinstance(roots, str | Path) else roots)]
    out = Path(out)
    label = labeller(roots)
    # Stage folders in pipeline order, by the inputs each _SUCCESS records (blending.stages).
    runs, evals, ablations, estimates, costs = [], {}, {}, {}, {}
    manifest, manifest_label = None, None
    for folder, files in (item for root in roots for item in _folders(root, out)):
        if ABLATION in files:
            name = label(folder) if label(folder) != "." else folder.resolve().name
            ablations[name] = (folder, read_json(folder / ABLATION) or {})
            continue
        if ESTIMATE in files:
            estimates[label(folder)] = (folder, read_json(folder / ESTIMATE) or {})
            continue
        if COST in files:
            costs[label(folder)] = read_json(folder / COST) or {}
        if MANIFEST in files and manifest is None:
            content = read_json(folder / MANIFEST)
            if content and "sources" in content and "tokenizer" in content:
                manifest, manifest_label = content, label(folder)
        if "metrics.csv" in files and "config.json" in files:
            runs.append(Run(folder, label(folder), read_json(folder / "config.json") or {},
                            read_json(folder / "summary.json") or {}, read_csv(folder / "metrics.csv"),
                            read_csv(folder / "valid.csv")))
        # trainer.evaluate's results: eval.json, and a run's eval/step_N.json (trainer.train --eval-tasks)
        for name in sorted(f for f in files if f == "eval.json" or (folder.name == "eval" and f.startswith("step_")
                                                                     and f.endswith(".json"))):
            evals[f"{label(folder)}/{name}"] = read_json(folder / name) or {}
    inside = [folder.resolve() for folder, _ in [*ablations.values(), *estimates.values()]] + [out.resolve()]
    stages = [s for s in stages_of(find_stage_folders(roots), label)
              if not any(s.folder.resolve().is_relative_to(f) for f in inside)]
    return Report(roots, stages, manifest, manifest_label, runs, evals, ablations,
                  {name: content for name, (_, content) in estimates.items()}, costs)
