"""Every command line, given bad input, says so in one line on stderr naming the culprit, and exits 2.

Each case runs `python -m ...` as a real subprocess on real bad files built in a temporary folder: a
missing path, an empty folder, a corrupt Parquet file, a truncated .idx, a corrupt stats.json, an unknown
config key, a wrong config type, a manifest path outside its folder. The cases run a few at a time (most
of their time is interpreter and library start-up), then each is checked on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from blending.manifest import ManifestError, load_manifest
from tests.helpers import FIXTURES, ROOT, build_prose_shards

WARC = str(FIXTURES / "warc" / "whirlwind.warc.gz")


def bad_inputs(root: Path) -> dict[str, Path]:
    """The bad files and folders, by name."""
    paths = {"missing": root / "no-such-thing", "empty": root / "empty"}
    paths["empty"].mkdir()
    paths["corrupt_parquet"] = stage_folder(root / "corrupt-parquet", stats=json.dumps(STATS))
    for part in ("part-00000.parquet", "dropped_index/part-00000.parquet"):
        (paths["corrupt_parquet"] / part).parent.mkdir(exist_ok=True)
        (paths["corrupt_parquet"] / part).write_bytes(os.urandom(64))
    paths["corrupt_stats"] = stage_folder(root / "corrupt-stats", stats='{"stage": "cleanup", "in": {"rows": ')
    shards = build_prose_shards(root / "shards").parent
    paths["manifest"] = shards / "manifest.json"
    paths["truncated_idx"] = copy_of(shards, root / "truncated")
    idx = paths["truncated_idx"] / "shakespeare" / "train_00000.idx"
    idx.write_bytes(idx.read_bytes()[:-9])
    paths["outside"] = copy_of(shards, root / "outside")
    manifest = json.loads((paths["outside"] / "manifest.json").read_text())
    manifest["tokenizer"]["file"] = "/etc/hostname"
    (paths["outside"] / "manifest.json").write_text(json.dumps(manifest))
    configs = {"dataprep_unknown": "dedupe: {bands: 3}\n", "dataprep_type": "dedup: {bands: twenty}\n",
               "dataprep_section": "dedup: 5\n", "unsafe_source": "sources: [{name: ../../escape, inputs: [x]}]\n",
               "blend_unknown": BLEND + "shard_size: 5\n", "blend_type": BLEND + "valid_fraction: x\n",
               "train_unknown": "model: {num_layerz: 2}\n", "train_type": "model: {num_layers: twenty}\n"}
    for name, text in configs.items():
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(text)
    return paths


STATS = {"stage": "cleanup", "version": 1, "in": {"rows": 1, "bytes": 10}, "kept": {"rows": 0, "bytes": 0},
         "dropped": {"too_short": 1}, "out": {"rows": 0, "bytes": 0, "tokens": None}, "extra": {}}
BLEND = "tokenizer: {file: t.json}\nsources: [{name: a, inputs: [x], weight: 1}]\n"


def stage_folder(folder: Path, stats: str) -> Path:
    folder.mkdir()
    (folder / "_SUCCESS").write_text(json.dumps({"stage": "cleanup", "code_version": "1", "inputs": [],
                                                 "config_hash": "0"}))
    (folder / "stats.json").write_text(stats)
    return folder


def copy_of(shards: Path, target: Path) -> Path:
    shutil.copytree(shards, target)
    return target


# (name, the command's arguments with {placeholders} for bad_inputs' paths, what the one line must name)
CASES = [
    ("dataprep run: missing input", "dataprep run --input {missing} --out {out}", "{missing}"),
    ("dataprep run: a glob that matches nothing", "dataprep run --input {empty}/*.warc.gz --out {out}",
     "{empty}/*.warc.gz"),
    ("dataprep run: unknown config key", "dataprep run --input " + WARC + " --out {out} --config {dataprep_unknown}",
     "{dataprep_unknown}: dedupe: unknown key"),
    ("dataprep run: wrong config type", "dataprep run --input " + WARC + " --out {out} --config {dataprep_type}",
     "{dataprep_type}: dedup.bands: expected an integer, got 'twenty'"),
    ("dataprep run: unsafe source name", "dataprep run --out {out} --config {unsafe_source}",
     "{unsafe_source}: sources[0].name: expected a name"),
    ("dataprep run: unsafe --source", "dataprep run --input " + WARC + " --out {out} --source ../x", "--source"),
    ("dataprep extract: missing input", "dataprep extract --input {missing} --output {out}", "{missing}"),
    ("dataprep cleanup: empty folder", "dataprep cleanup --input {empty} --output {out}", "{empty} has no _SUCCESS"),
    ("dataprep quality: section of wrong type",
     "dataprep quality --input {corrupt_stats} --output {out} --config {dataprep_section}",
     "{dataprep_section}: dedup: expected a mapping"),
    ("dataprep train-classifier: wrong config type", "dataprep train-classifier --out {out} --config {dataprep_type}",
     "{dataprep_type}: dedup.bands"),
    ("dataprep train-classifier: missing positives", "dataprep train-classifier --out {out} --positives {missing}",
     "{missing}"),
    ("blending build: missing config", "blending build --config {missing} --out {out}", "{missing}"),
    ("blending build: unknown config key", "blending build --config {blend_unknown} --out {out}",
     "{blend_unknown}: shard_size: unknown key"),
    ("blending build: wrong config type", "blending build --config {blend_type} --out {out}",
     "{blend_type}: valid_fraction: expected a number, got 'x'"),
    ("blending verify: empty folder", "blending verify {empty}", "{empty}/manifest.json"),
    ("blending verify: tokenizer outside", "blending verify {outside}", "tokenizer file '/etc/hostname'"),
    ("blending preview: truncated .idx", "blending preview {truncated_idx} --samples 10 --seq-len 8",
     "shakespeare/train_00000.idx"),
    ("blending locate: missing manifest", "blending locate {missing} --sample 0", "{missing}"),
    ("reporting inspect: corrupt parquet", "reporting inspect {corrupt_parquet}", "dropped_index/part-00000.parquet"),
    ("reporting inspect: corrupt stats.json", "reporting inspect {corrupt_stats}", "{corrupt_stats}/stats.json"),
    ("reporting inspect: missing folder", "reporting inspect {missing}", "{missing}"),
    ("reporting funnel: corrupt stats.json", "reporting funnel {corrupt_stats}", "{corrupt_stats}/stats.json"),
    ("reporting report: corrupt stats.json", "reporting report {corrupt_stats} --out {out}",
     "{corrupt_stats}/stats.json"),
    ("reporting report: empty folder", "reporting report {empty}", "{empty}"),
    ("trainer.train: missing manifest", "trainer.train --manifest {missing} --out {out}", "{missing}"),
    ("trainer.train: unknown config key", "trainer.train --manifest {manifest} --out {out} --config {train_unknown}",
     "{train_unknown}: model.num_layerz: unknown key"),
    ("trainer.train: wrong config type", "trainer.train --manifest {manifest} --out {out} --config {train_type}",
     "{train_type}: model.num_layers: expected an integer, got 'twenty'"),
    ("trainer.train: tokenizer outside", "trainer.train --manifest {outside} --out {out}",
     "tokenizer file '/etc/hostname'"),
    ("trainer.evaluate: missing checkpoint", "trainer.evaluate --checkpoint {missing}", "{missing}"),
    ("trainer.export_hf: empty folder", "trainer.export_hf --checkpoint {empty} --out {out}", "{empty}"),
    ("trainer.reshard: missing checkpoint", "trainer.reshard --checkpoint {missing} --tp 1 --pp 1 --out {out}",
     "{missing}"),
    ("trainer.locate: empty run folder", "trainer.locate --run {empty} --step 1", "{empty}"),
    ("trainer.plan: wrong --set type", "trainer.plan --preset tiny-cpu --set model.num_layers=twenty",
     "--set model.num_layers"),
]


# torch (and megatron) take seconds to import, more on a busy machine: these run in the slow tier
TORCH_COMMANDS = ("trainer.train", "trainer.evaluate", "trainer.export_hf", "trainer.reshard", "trainer.locate")


def needs_torch(command: str) -> bool:
    return command.split()[0] in TORCH_COMMANDS


def run_case(command: str, paths: dict[str, Path], out: Path) -> subprocess.CompletedProcess:
    argv = command.format(out=out, **paths).split()
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)


def run_cases(cases: list[tuple[str, str, str]], paths: dict[str, Path], root: Path) -> dict:
    """The cases' outcomes by name, run a few at a time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_case, command, paths, root / f"out-{i}")
                   for i, (name, command, _) in enumerate(cases)}
    return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    return bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def outcomes(paths, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    return run_cases([c for c in CASES if not needs_torch(c[1])], paths, tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def torch_outcomes(paths, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    return run_cases([c for c in CASES if needs_torch(c[1])], paths, tmp_path_factory.mktemp("out"))


def check_one_line(done: subprocess.CompletedProcess, culprit: str) -> None:
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1, done.stderr[-3000:]
    assert culprit in lines[0]


@pytest.mark.parametrize("name, culprit", [(name, culprit) for name, command, culprit in CASES
                                           if not needs_torch(command)])
def test_bad_input_is_one_line_naming_the_culprit_and_exit_2(outcomes, paths, name, culprit):
    check_one_line(outcomes[name], culprit.format(**paths))


@pytest.mark.slow  # five torch-importing programs, ~5-15 s each to start
@pytest.mark.parametrize("name, culprit", [(name, culprit) for name, command, culprit in CASES
                                           if needs_torch(command)])
def test_the_trainers_bad_input_is_one_line_naming_the_culprit_and_exit_2(torch_outcomes, paths, name, culprit):
    check_one_line(torch_outcomes[name], culprit.format(**paths))


def test_a_manifest_tokenizer_must_resolve_inside_its_folder(tmp_path):
    manifest_path = build_prose_shards(tmp_path / "shards")
    raw = json.loads(manifest_path.read_text())
    for where in ("../tokenizer.json", "/etc/hostname", "link.json"):
        (tmp_path / "shards" / "link.json").symlink_to("/etc/hostname")
        manifest_path.write_text(json.dumps({**raw, "tokenizer": {**raw["tokenizer"], "file": where}}))
        with pytest.raises(ManifestError, match=f"tokenizer file '{where}' must be a path inside"):
            load_manifest(manifest_path)
        (tmp_path / "shards" / "link.json").unlink()
    manifest_path.write_text(json.dumps(raw))
    assert load_manifest(manifest_path).tokenizer_path == tmp_path / "shards" / "tokenizer.json"
