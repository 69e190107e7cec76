"""Inputs read where Common Crawl lives: the sample crawl's WARC files served by a real S3 API (moto's
server) and a real HTTP server on 127.0.0.1, with and without a proxy that answers 503 and cuts bodies
short. The reader's retries against the proxy; the extract stage's folders against the local run's,
byte for byte; a file that never answers; the record behind an origin re-read over the network."""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from blending.__main__ import main as blending_main
from blending.remote_files import RemoteConfig, RemoteReadError, open_remote
from dataprep.config import DataprepConfig
from dataprep.extract.warc_reader import read_warc
from dataprep.framework.inputs import READ_FAILED
from dataprep.pipeline import run
from reporting.__main__ import main as reporting_main
from tests.servers import FaultProxy

BUCKET = "crawl-data"
FAST_RETRIES = RemoteConfig(base_delay_s=0.001, max_delay_s=0.01, max_attempts=12, timeout_s=5)


def _config(remote: RemoteConfig | None = None) -> DataprepConfig:
    config = DataprepConfig()
    config.output.num_buckets = 4
    if remote is not None:
        config.remote = remote
    return config


def _folder_files(folder: Path) -> dict[str, bytes]:
    """Every file of a stage folder but _SUCCESS (it names where the inputs were read)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "_SUCCESS"}


def _stats(folder: Path) -> dict:
    return json.loads((folder / "stats.json").read_text())


def _warcs(crawl: Path) -> list[Path]:
    return sorted(crawl.glob("*.warc.gz"))


def _listing(folder: Path, names: list[str]) -> str:
    """A Common Crawl style warc.paths.gz: paths relative to the crawl's base."""
    path = folder / "warc.paths.gz"
    path.write_bytes(gzip.compress("".join(f"crawl/segments/{n}\n" for n in names).encode()))
    return str(path)


@pytest.fixture(scope="module")
def s3_crawl(s3_server, sample_crawl) -> str:
    """The sample crawl's WARC files in the S3 server under s3://crawl-data/crawl/segments/."""
    base = s3_server.create_bucket(BUCKET)
    for path in _warcs(sample_crawl[0]):
        s3_server.put(f"{base}/crawl/segments/{path.name}", path.read_bytes())
    return base + "/"


@pytest.fixture(scope="module")
def local_extract(spark, sample_crawl, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "extract"
    run("extract", spark, [str(sample_crawl[0] / "*.warc.gz")], str(out), _config(), keep_dropped=True)
    return out


# -- the reader, against the real servers through the proxy -------------------------------------------------


@pytest.fixture(scope="module")
def blob(s3_server) -> tuple[str, bytes]:
    data = bytes(range(256)) * 12_000  # 3 MB, every offset telling
    uri = s3_server.create_bucket("blobs") + "/some/blob.bin"
    s3_server.put(uri, data)
    return uri, data


def test_reader_resumes_where_s3_answers_broke_off(s3_server, blob):
    uri, data = blob
    with FaultProxy(s3_server.endpoint, seed=4, unavailable=0.25, cut=0.35) as proxy:
        settings = dataclasses.replace(FAST_RETRIES, endpoint=proxy.url)
        with open_remote(uri, settings) as f:
            got = b"".join(iter(lambda: f.read(100_000), b""))
            retries = f.raw.retries
    assert got == data
    assert proxy.faults["unavailable"] > 0 and proxy.faults["cut"] > 0
    assert retries == proxy.faults["unavailable"] + proxy.faults["cut"]


def test_reader_resumes_over_http_and_reads_from_an_offset(http_files):
    folder, url = http_files
    data = bytes(range(256)) * 8_000
    (folder / "blob.bin").write_bytes(data)
    with FaultProxy(url, seed=1, unavailable=0.3, cut=0.3, s3=False) as proxy:
        with open_remote(f"{proxy.url}/blob.bin", FAST_RETRIES) as f:
            assert f.read() == data
            whole_retries = f.raw.retries
        with open_remote(f"{proxy.url}/blob.bin", FAST_RETRIES, offset=1_000_001) as f:
            assert f.read() == data[1_000_001:]
    assert whole_retries > 0
    assert sum(proxy.faults.values()) > 0


def test_reader_gives_up_after_its_attempts_and_leaves_permanent_errors_alone(s3_server, blob):
    uri, _ = blob
    with FaultProxy(s3_server.endpoint, dead=("blob.bin",)) as proxy:
        settings = dataclasses.replace(FAST_RETRIES, endpoint=proxy.url, max_attempts=4)
        with open_remote(uri, settings) as f, pytest.raises(RemoteReadError, match="after 4 attempts.*SlowDown"):
            f.read()
        assert f.raw.retries == 3 and proxy.faults["dead"] == 4
    with FaultProxy(s3_server.endpoint, dead=("blob.bin",), hang_s=2) as proxy:
        settings = dataclasses.replace(FAST_RETRIES, endpoint=proxy.url, max_attempts=2, timeout_s=0.3)
        with open_remote(uri, settings) as f, pytest.raises(RemoteReadError, match="after 2 attempts"):
            f.read()
    with open_remote(uri.replace("blob.bin", "missing.bin"), FAST_RETRIES) as f, pytest.raises(FileNotFoundError):
        f.read()
    assert f.raw.retries == 0


# -- the extract stage over S3 and HTTPS --------------------------------------------------------------------


@pytest.mark.slow  # extract runs again, three times, to compare
def test_extract_from_s3_and_https_writes_the_local_runs_bytes(spark, sample_crawl, s3_crawl, local_extract,
                                                               http_files, tmp_path, capsys):
    names = [p.name for p in _warcs(sample_crawl[0])]
    listing = _listing(tmp_path, names)
    local = _folder_files(local_extract)
    assert _stats(local_extract)["extra"]["input_retries"] == 0

    run("extract", spark, [listing], str(tmp_path / "s3"), _config(), base=s3_crawl, keep_dropped=True)
    assert _folder_files(tmp_path / "s3") == local
    success = json.loads((tmp_path / "s3" / "_SUCCESS").read_text())
    assert [i["path"] for i in success["inputs"]] == [f"{s3_crawl}crawl/segments/{n}" for n in names]
    # inspect re-reads sampled records from where the stage read them
    capsys.readouterr()
    assert reporting_main(["inspect", str(tmp_path / "s3"), "--reason", "not_response", "--sample", "2", "--pages"]) == 0
    assert capsys.readouterr().out.count(f"(read from {s3_crawl}crawl/segments/") == 2

    folder, url = http_files
    (folder / "crawl").mkdir()
    shutil.copytree(sample_crawl[0], folder / "crawl" / "segments")
    run("extract", spark, [listing], str(tmp_path / "https"), _config(), base=url, keep_dropped=True)
    assert _folder_files(tmp_path / "https") == local


@pytest.mark.slow
def test_extract_through_injected_faults_keeps_every_byte_and_counts_retries(spark, sample_crawl, s3_server,
                                                                             s3_crawl, local_extract, tmp_path):
    listing = _listing(tmp_path, [p.name for p in _warcs(sample_crawl[0])])
    with FaultProxy(s3_server.endpoint, seed=7, unavailable=0.1, cut=0.1) as proxy:  # 20% of requests fail
        settings = dataclasses.replace(FAST_RETRIES, endpoint=proxy.url)
        run("extract", spark, [listing], str(tmp_path / "out"), _config(settings), base=s3_crawl, keep_dropped=True)
    got, local = _folder_files(tmp_path / "out"), _folder_files(local_extract)
    assert {k: v for k, v in got.items() if k != "stats.json"} == {k: v for k, v in local.items() if k != "stats.json"}
    stats, local_stats = _stats(tmp_path / "out"), _stats(local_extract)
    retries = stats["extra"].pop("input_retries")
    local_stats["extra"].pop("input_retries")
    assert stats == local_stats
    assert proxy.faults["unavailable"] > 0 and proxy.faults["cut"] > 0  # this seed gives both (2 and 2)
    assert retries == sum(proxy.faults.values())


@pytest.mark.slow
def test_a_file_that_never_answers_is_counted_and_the_others_kept(spark, sample_crawl, s3_server, s3_crawl,
                                                                  local_extract, tmp_path):
    warcs = _warcs(sample_crawl[0])
    dead = next(p.name for p in warcs if p.name.startswith("SAMPLE"))
    listing = _listing(tmp_path, [p.name for p in warcs])
    with FaultProxy(s3_server.endpoint, dead=(dead,)) as proxy:
        settings = dataclasses.replace(FAST_RETRIES, endpoint=proxy.url, max_attempts=3)
        run("extract", spark, [listing], str(tmp_path / "out"), _config(settings), base=s3_crawl, keep_dropped=True)
    assert proxy.faults["dead"] == 3
    stats, local_stats = _stats(tmp_path / "out"), _stats(local_extract)
    assert stats["dropped"][READ_FAILED] == 1
    assert stats["in"]["rows"] == stats["kept"]["rows"] + sum(stats["dropped"].values())
    [fault] = [f for f in stats["extra"]["faults"] if f["reason"] == READ_FAILED]
    assert fault["origin"] == f"{dead}@0" and "after 3 attempts" in fault["detail"]
    assert stats["extra"]["input_retries"] == 2

    def kept(folder: Path) -> dict[str, str]:
        table = pq.read_table(sorted(folder.glob("part-*.parquet")), columns=["doc_id", "origin"])
        return dict(zip(table["doc_id"].to_pylist(), table["origin"].to_pylist()))

    local_kept = kept(local_extract)
    others = {d: o for d, o in local_kept.items() if not o.startswith(dead + "@")}
    assert len(others) < len(local_kept)
    assert kept(tmp_path / "out") == others
    assert stats["kept"]["rows"] == len(others)
    assert local_stats["in"]["rows"] - stats["in"]["rows"] == sum(
        1 for _ in read_warc(open(sample_crawl[0] / dead, "rb"), 10 << 20)) - 1


# -- lineage: the record behind an origin, re-read over the network -----------------------------------------


def _first_page(path: Path):
    """(origin, target URI) of the file's first HTML response record."""
    with open(path, "rb") as f:
        for raw in read_warc(f, 10 << 20):
            if b"WARC-Type: response" in raw.header and b"text/html" in raw.block[:2000]:
                uri = next(line.split(b":", 1)[1].strip() for line in raw.header.split(b"\r\n")
                           if line.startswith(b"WARC-Target-URI"))
                return f"{path.name}@{raw.offset}", uri.decode()
    raise AssertionError(f"no HTML response in {path}")


def test_locate_prints_the_page_of_an_origin_on_s3_and_https(sample_crawl, s3_crawl, http_files, capsys):
    warc = next(p for p in _warcs(sample_crawl[0]) if p.name.startswith("SAMPLE"))
    origin, url = _first_page(warc)
    assert blending_main(["locate", "--origin", origin, "--warc", str(warc.parent), "--json"]) == 0
    local = json.loads(capsys.readouterr().out)["record"]
    assert local["target_uri"] == url and local["http_status"] == 200 and "<html" in local["page"].lower()

    assert blending_main(["locate", "--origin", origin, "--warc", f"{s3_crawl}crawl/segments/", "--json"]) == 0
    remote = json.loads(capsys.readouterr().out)["record"]
    assert remote == {**local, "location": f"{s3_crawl}crawl/segments/{warc.name}"}

    folder, base = http_files
    shutil.copy(warc, folder)
    assert blending_main(["locate", "--origin", origin, "--warc", base]) == 0
    printed = capsys.readouterr().out
    assert f"read from {base}{warc.name}" in printed and url in printed
    assert local["page"].strip().splitlines()[0].strip() in printed


def test_locate_reads_the_file_the_extract_stage_read(sample_crawl, s3_crawl, tmp_path, capsys):
    """With --stages, the WARC file is the one the extract stage's _SUCCESS lists: here on S3."""
    warc = next(p for p in _warcs(sample_crawl[0]) if p.name.startswith("SAMPLE"))
    origin, url = _first_page(warc)
    extract = tmp_path / "run" / "extract"
    extract.mkdir(parents=True)
    location = f"{s3_crawl}crawl/segments/{warc.name}"
    (extract / "_SUCCESS").write_text(json.dumps({"stage": "extract", "code_version": "x", "config_hash": "x",
                                                  "inputs": [{"path": location, "size": None}]}))
    assert blending_main(["locate", "--origin", origin, "--stages", str(tmp_path / "run"), "--page", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["record"]
    assert record["location"] == location and record["target_uri"] == url
    assert blending_main(["locate", "--origin", origin, "--stages", str(tmp_path / "run")]) == 2  # asks --page
    assert "--page" in capsys.readouterr().err


@pytest.mark.slow  # the whole pipeline again: the shared run's crawl read from S3, every folder written to S3
def test_the_pipeline_from_s3_into_s3_writes_the_shared_local_runs_files(spark, sample_crawl, s3_crawl, s3_server,
                                                                         pipeline_run, tmp_path):
    from blending.stage_folder import file_uri, read_listing
    from dataprep.pipeline import SourceSpec, run_pipeline
    from dataprep.schema import DEFAULT_SOURCE
    from tests.helpers import PIPELINE_OPTIONS, pipeline_run_config

    listing = _listing(tmp_path, [p.name for p in _warcs(sample_crawl[0])])
    source = SourceSpec(DEFAULT_SOURCE, "extract", [listing], {"base": s3_crawl})
    out = s3_server.create_bucket("pipeline-out") + "/run"
    done = run_pipeline(spark, [source], out, pipeline_run_config(), PIPELINE_OPTIONS, keep_dropped=True)
    assert len(done) >= 5
    for folder, _ in done:
        name = folder.removeprefix(out + "/")
        files = read_listing(folder)
        remote = {n: s3_server.get(file_uri(folder, n, files)) for n in sorted(files)}
        assert remote == _folder_files(pipeline_run / name), name


def test_ingest_reads_compressed_jsonl_from_s3_through_faults_and_counts_a_dead_file(s3_server, tmp_path):
    from dataprep.framework.spark_rows import FILE_COUNTS
    from dataprep.ingest.stage import IngestStage

    lines = "".join(json.dumps({"text": f"document {i} " + "word " * (i % 50)}) + "\n" for i in range(20_000))
    local = tmp_path / "docs.jsonl.gz"
    local.write_bytes(gzip.compress(lines.encode()))
    uri = s3_server.create_bucket("ingest") + "/docs.jsonl.gz"
    s3_server.put(uri, local.read_bytes())

    def rows(path: str, remote: RemoteConfig) -> tuple[list[dict], int]:
        stage = IngestStage.with_options(_config(remote), source="s", format="jsonl")
        out = list(stage.rows_of_file(path))
        counts = [r[FILE_COUNTS]["input_retries"] for r in out if FILE_COUNTS in r]
        return [r for r in out if FILE_COUNTS not in r], sum(counts)

    expected, none = rows(str(local), FAST_RETRIES)
    assert len(expected) == 20_000 and none == 0
    with FaultProxy(s3_server.endpoint, seed=1, unavailable=0.3, cut=0.3) as proxy:
        got, retries = rows(uri, dataclasses.replace(FAST_RETRIES, endpoint=proxy.url))
    assert got == expected and retries == sum(proxy.faults.values()) > 0
    with FaultProxy(s3_server.endpoint, dead=("docs.jsonl",)) as proxy:
        got, retries = rows(uri, dataclasses.replace(FAST_RETRIES, endpoint=proxy.url, max_attempts=2))
    assert [r["drop_reason"] for r in got] == [READ_FAILED] and retries == 1
