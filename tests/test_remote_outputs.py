"""Outputs on object storage, against a real S3 API on 127.0.0.1 (conftest's `s3_server`): stage folders
written by the listed commit protocol (blending/stage_folder.py) hold the same bytes as the shared local
run's; a stage SIGKILLed while writing leaves nothing a reader accepts and its rerun removes the orphans;
a blend built from S3 into S3, fetched to local disk, trains to the same losses as the local blend; a file
whose sha256 does not match stops the fetch."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blending.__main__ import main as blending_main
from blending.build import build
from blending.config import BlendConfig
from blending.fetch import fetch
from blending.manifest import MANIFEST_FILE as MANIFEST
from blending.stage_folder import (
    SUCCESS,
    InputError,
    file_uri,
    folder_record,
    list_parts,
    read_listing,
    read_stats,
    read_success,
    resolve,
    success_bytes,
    upload_folder,
)
from blending.stages import find_stage_folders
from tests.helpers import PIPELINE_OPTIONS, ROOT, build_prose_shards, launch_env, pipeline_run_config
from trainer.metrics import read_csv

# A one-process run of the smallest model (as tests/test_lineage_trainer.py's).
TRAIN_OVERRIDES = {
    "parallel.tensor": 1, "parallel.pipeline": 1, "model.num_layers": 2, "model.hidden_size": 32,
    "model.num_attention_heads": 2, "model.seq_length": 32, "batch.micro_batch_size": 4,
    "batch.global_batch_size": 32, "train_tokens": 32 * 32 * 20, "run.log_interval": 1, "run.eval_interval": 0,
    "run.eval_samples": 8, "run.save_interval": 0,
}


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def files(keys: list[str]) -> set[str]:
    """The objects that hold data: pyarrow leaves empty `prefix/` markers where it deleted a folder."""
    return {k for k in keys if not k.endswith("/")}


@pytest.fixture(scope="module")
def bucket(s3_server) -> str:
    return s3_server.create_bucket("outputs")


@pytest.fixture(scope="module")
def s3_run(spark, sample_crawl, default_classifier, bucket) -> str:
    """`python -m dataprep run` of the shared local run's inputs and settings, its outputs on S3."""
    from dataprep.pipeline import SourceSpec, run_pipeline
    from dataprep.schema import DEFAULT_SOURCE

    out = f"{bucket}/docs"
    source = SourceSpec(DEFAULT_SOURCE, "extract", [str(sample_crawl[0] / "*.warc.gz")])
    run_pipeline(spark, [source], out, pipeline_run_config(), PIPELINE_OPTIONS, keep_dropped=True)
    return out


def write_attempt(out: str, files: dict[str, bytes]) -> str:
    from blending.stage_folder import working_folder, write_bytes

    attempt = working_folder(out)
    for name, data in files.items():
        write_bytes(f"{attempt}/{name}", data)
    return attempt


def test_a_listed_folder_is_read_through_its_success_and_a_commit_removes_other_attempts(bucket, s3_server, tmp_path):
    from blending.stage_folder import commit_listed, read_json, reusable

    out = f"{bucket}/protocol/stage"
    record = {"stage": "cleanup", "code_version": "1", "inputs": [], "config_hash": "a"}
    killed = write_attempt(out, {"part-00000.parquet": b"killed"})
    assert not reusable(out, record)  # a killed run's files only: nothing to reuse, nothing refused
    with pytest.raises(InputError, match="did not finish"):
        list_parts(out)

    first = write_attempt(out, {"part-00000.parquet": b"first", "stats.json": b'{"n": 1}'})
    running = write_attempt(out, {"part-00000.parquet": b"running"})  # another killed run's
    commit_listed(first, out, record)
    assert read_success(out) == success_bytes(record)
    assert list_parts(out) == [f"{first}/part-00000.parquet"]
    assert read_json(out, "stats.json") == {"n": 1}
    assert folder_record(out)["parts"] == [{"name": "part-00000.parquet", "size": 5}]
    assert reusable(out, record)
    key = out.split("/", 3)[3]
    stored = files(s3_server.keys(out + "/"))
    assert stored == {f"{key}/{SUCCESS}", f"{key}/{first.rsplit('/', 1)[1]}/part-00000.parquet",
                      f"{key}/{first.rsplit('/', 1)[1]}/stats.json"}
    assert killed.rsplit("/", 1)[1] not in str(stored) and running.rsplit("/", 1)[1] not in str(stored)

    second = write_attempt(out, {"part-00000.parquet": b"second", "part-00001.parquet": b"2"})
    assert read_bytes(list_parts(out)[0]) == b"first"  # the old folder stands until the new _SUCCESS is in
    commit_listed(second, out, {**record, "config_hash": "b"})
    assert [read_bytes(p) for p in list_parts(out)] == [b"second", b"2"]
    assert read_json(out, "stats.json") is None  # the new attempt has none: the old one's is not read
    assert not [k for k in files(s3_server.keys(out + "/")) if first.rsplit("/", 1)[1] in k]

    # a listed folder copied to local disk as it is stays a listed folder: its listing says what to read
    local = tmp_path / "copy"
    for k in files(s3_server.keys(out + "/")):
        (local / k.removeprefix(key + "/")).parent.mkdir(parents=True, exist_ok=True)
        (local / k.removeprefix(key + "/")).write_bytes(read_bytes(f"{bucket}/{k}"))
    (local / "part-00009.parquet").write_bytes(b"not listed")
    assert [Path(p).read_bytes() for p in list_parts(str(local))] == [b"second", b"2"]
    assert [p.read_bytes() for p in find_stage_folders(local)[0].parts] == [b"second", b"2"]  # lineage, reports


@pytest.mark.slow
def test_every_stage_folder_on_s3_holds_the_local_runs_bytes(s3_run, pipeline_run, s3_server):
    local_folders = find_stage_folders(pipeline_run)
    assert len(local_folders) >= 5
    for local in local_folders:
        relative = local.path.relative_to(pipeline_run).as_posix()
        remote = f"{s3_run}/{relative}"
        listing = read_listing(remote)
        local_files = sorted(p.relative_to(local.path).as_posix() for p in local.path.rglob("*") if p.is_file())
        assert sorted([*listing, SUCCESS]) == local_files, relative
        for name in listing:
            assert read_bytes(file_uri(remote, name, listing)) == (local.path / name).read_bytes(), f"{relative}/{name}"
        # the record without its listing is the local _SUCCESS, so the stages after record both alike
        assert read_success(remote) == (local.path / SUCCESS).read_bytes()
        assert folder_record(remote) == folder_record(str(local.path))
        # nothing but the listed files and the record under the folder
        prefix = remote.split("/", 3)[3]
        stored = files(s3_server.keys(remote + "/"))
        assert stored == {f"{prefix}/{SUCCESS}"} | {f"{prefix}/{e['path']}" for e in listing.values()}
    assert not [k for k in files(s3_server.keys(s3_run)) if ".tmp-" in k]  # extract's per-file store is gone


@pytest.mark.slow
def test_a_stage_killed_while_writing_to_s3_leaves_no_folder_and_the_rerun_removes_its_orphans(
        spark, sample_crawl, bucket, s3_server):
    from dataprep.config import DataprepConfig
    from dataprep.pipeline import run

    out = f"{bucket}/killed/extract"
    buckets = 256  # hundreds of small PUTs: a writing phase long enough to be caught in
    argv = [sys.executable, "-m", "dataprep", "extract", "--input", str(sample_crawl[0] / "*.warc.gz"),
            "--output", out, "--num-buckets", str(buckets), "--master", "local[2]"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=launch_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: the JVM and Python workers too
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if len([k for k in s3_server.keys(out) if "/_attempt-" in k and "/part-" in k]) >= 8:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the stage ended before any part file reached S3"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    written = files(s3_server.keys(out))
    assert any("/_attempt-" in k and "/part-" in k for k in written)
    assert not any(k.endswith(f"/{SUCCESS}") for k in written), "killed before its last part, yet finished"
    for reader in (list_parts, folder_record, read_success):
        with pytest.raises(InputError, match="did not finish"):
            reader(out)

    config = DataprepConfig()
    config.output.num_buckets = buckets
    stats = run("extract", spark, [str(sample_crawl[0] / "*.warc.gz")], out, config)
    listing = read_listing(out)
    assert len(list_parts(out)) == buckets
    assert read_stats(out)["in"]["rows"] == stats.in_rows > 0
    key = out.removeprefix(f"{bucket}/")
    assert files(s3_server.keys(f"{bucket}/killed")) == {f"{key}/{SUCCESS}"} | {f"{key}/{e['path']}" for e in listing.values()}
    assert len({e["path"].split("/")[0] for e in listing.values()}) == 1  # one attempt: the rerun's


@pytest.mark.slow
def test_a_blend_built_from_s3_into_s3_and_fetched_trains_like_the_local_blend(
        s3_run, pipeline_shards, tmp_path, bucket, s3_server):
    from dataprep.schema import DEFAULT_SOURCE

    config = BlendConfig.from_dict({  # conftest's pipeline_shards, reading the S3 run's last stage
        "tokenizer": {"file": str(tmp_path / "tokenizer" / "tokenizer.json"), "train_vocab_size": 500},
        "shard_size_tokens": 20_000,
        "valid_fraction": 0.2,
        "sources": [{"name": DEFAULT_SOURCE, "inputs": [s3_run], "weight": 1.0}],
    })
    manifest = build(config, f"{bucket}/blend", master="local[2]")
    assert manifest == f"{bucket}/blend/{MANIFEST}"
    assert build(config, f"{bucket}/blend", master="local[2]") == manifest  # reused, not rebuilt
    assert blending_main(["fetch", manifest, "--to", str(tmp_path / "blend")]) == 0
    fetched = tmp_path / "blend"
    local = pipeline_shards.parent
    # megatron's own index caches (cache/), which other tests' datasets leave beside the shared shards, are
    # not the blend's
    names = sorted(p.relative_to(local).as_posix() for p in local.rglob("*")
                   if p.is_file() and p.relative_to(local).parts[0] != "cache")
    assert sorted(p.relative_to(fetched).as_posix() for p in fetched.rglob("*") if p.is_file()) == names
    for name in names:
        if name != SUCCESS:  # its config digest names the inputs' locations
            assert (fetched / name).read_bytes() == (local / name).read_bytes(), name
    assert blending_main(["verify", str(fetched)]) == 0

    losses = {}
    for label, path in (("local", pipeline_shards), ("fetched", fetched / MANIFEST)):
        out = tmp_path / f"run-{label}"
        sets = [arg for k, v in TRAIN_OVERRIDES.items() for arg in ("--set", f"{k}={v}")]
        done = subprocess.run([sys.executable, "-m", "trainer.train", "--preset", "tiny-cpu", "--manifest", str(path),
                               "--out", str(out), "--no-save", "--max-steps", "3", *sets],
                              cwd=ROOT, env=launch_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        losses[label] = [row["loss"] for row in read_csv(out / "metrics.csv")]
    assert len(losses["local"]) == 3
    assert losses["fetched"] == losses["local"]


@pytest.fixture(scope="module")
def prose_blend_on_s3(tmp_path_factory, bucket) -> tuple[Path, str]:
    """(a local blend of real prose, the same blend uploaded as a listed folder)."""
    local = build_prose_shards(tmp_path_factory.mktemp("prose") / "blend").parent
    staged = tmp_path_factory.mktemp("upload") / "blend"
    shutil.copytree(local, staged)
    (staged / SUCCESS).write_bytes(success_bytes({"stage": "blend", "inputs": []}))
    upload_folder(staged, f"{bucket}/prose")
    return local, f"{bucket}/prose"


def test_fetch_copies_every_listed_file_and_resumes(prose_blend_on_s3, tmp_path):
    local, remote = prose_blend_on_s3
    target = tmp_path / "blend"
    fetch(f"{remote}/{MANIFEST}", target, log=lambda line: None)
    for path in local.rglob("*"):
        if path.is_file():
            assert (target / path.relative_to(local)).read_bytes() == path.read_bytes()
    lines = []
    fetch(remote, target, log=lines.append)  # again: every file is already here
    assert lines and " 0 file(s) downloaded" in lines[0]


def test_fetch_refuses_a_file_whose_hash_does_not_match(prose_blend_on_s3, tmp_path, capsys, s3_server):
    _, remote = prose_blend_on_s3
    listing = read_listing(remote)
    name = next(n for n in sorted(listing) if n.endswith(".bin"))
    uri = file_uri(remote, name, listing)
    good = read_bytes(uri)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    s3_server.put(uri, bytes(bad))
    try:
        target = tmp_path / "blend"
        assert blending_main(["fetch", f"{remote}/{MANIFEST}", "--to", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and uri in err and "does not match the manifest" in err
        assert not target.exists()  # nothing published
        partial = tmp_path / ".blend.partial"
        assert not (partial / name).exists() and not (partial / MANIFEST).exists()
    finally:
        s3_server.put(uri, good)
    lines = []
    fetch(remote, target, log=lines.append)  # resumed: what the failed fetch checked is not read again
    assert (target / name).read_bytes() == good
    assert int(re.search(r"(\d+) already here", lines[0]).group(1)) >= 1  # the tokenizer, fetched first


@pytest.mark.slow
def test_a_report_written_to_s3_holds_the_local_reports_files(pipeline_run, tmp_path, bucket, s3_server, capsys):
    from reporting.__main__ import main as reporting_main

    local = tmp_path / "report"
    assert reporting_main(["report", str(pipeline_run), "--out", str(local)]) == 0
    assert reporting_main(["report", str(pipeline_run), "--out", f"{bucket}/report"]) == 0
    assert f"{bucket}/report/index.html" in capsys.readouterr().out
    # megatron's own index caches (cache/), which other tests' datasets leave beside the shared shards, are
    # not the blend's
    names = sorted(p.relative_to(local).as_posix() for p in local.rglob("*")
                   if p.is_file() and p.relative_to(local).parts[0] != "cache")
    assert "index.html" in names
    assert sorted(k.removeprefix("report/") for k in files(s3_server.keys(f"{bucket}/report/"))) == names
    assert read_bytes(f"{bucket}/report/index.html") == (local / "index.html").read_bytes()
