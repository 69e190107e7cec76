import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

import pytest

from tests.helpers import PIPELINE_OPTIONS, pipeline_run_config
from tests.servers import RangeFileServer, S3Server, aws_test_environment, free_port

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"

# Spark workers run this interpreter; deterministic, quiet local runs.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

# The S3 server's address and dummy keys, set before anything starts (a Spark JVM, and so its executors,
# keeps the environment it started with); the server itself starts when a test first asks for `s3_server`.
S3_PORT = free_port()
os.environ.update(aws_test_environment(S3_PORT, Path(tempfile.mkdtemp(prefix="aws-"))))

# The shared pipeline run: a small sample crawl (plus real faulty WARC files) through every stage of
# dataprep/pipeline.py, once per test session. A stage added to the pipeline runs in it by itself; one
# that needs settings (a model file, task files) adds them in tests/helpers.py (pipeline_run_config() / PIPELINE_OPTIONS).
# The quality stage uses the default classifier (the `default_classifier` fixture's).
SAMPLE_RECORDS, SAMPLE_FILES, SAMPLE_SEED = 240, 2, 3


@pytest.fixture(scope="session", autouse=True)
def verified_record(tmp_path_factory):
    """The record of shard files checked on this machine (blending/verified.py): the session's own."""
    os.environ["MTNLG_VERIFIED_RECORD"] = str(tmp_path_factory.mktemp("verified") / "verified-files.json")
    yield
    os.environ.pop("MTNLG_VERIFIED_RECORD", None)


@pytest.fixture(scope="session", autouse=True)
def dataprep_cache(tmp_path_factory):
    """The default quality classifier is trained once per session into a fresh cache, not ~/.cache."""
    before = os.environ.get("DATAPREP_CACHE")
    os.environ["DATAPREP_CACHE"] = str(tmp_path_factory.mktemp("dataprep-cache"))
    yield Path(os.environ["DATAPREP_CACHE"])
    if before is None:
        os.environ.pop("DATAPREP_CACHE", None)
    else:
        os.environ["DATAPREP_CACHE"] = before


@pytest.fixture(scope="session")
def default_classifier(dataprep_cache) -> Path:
    """The default classifier's model.bin (metrics.json beside it), as `python -m dataprep run` makes it."""
    from dataprep.config import ClassifierConfig
    from dataprep.quality.default_model import default_model

    return default_model(ClassifierConfig())


@pytest.fixture(scope="session")
def spark():
    """The one Spark session of a test run (local[2]), for every module. Tests must not stop it; code
    under test that asks for a session (get_spark, blending's build with master="local[2]") gets this one."""
    from blending.spark_session import get_spark

    return get_spark("local[2]", app_name="tests")


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on 127.0.0.1 (moto's server), which every client reaches through the AWS variables."""
    server = S3Server(S3_PORT).start()
    yield server
    server.stop()


@pytest.fixture
def http_files(tmp_path):
    """(folder, base URL): what a test puts in the folder is served over HTTP with Range support."""
    folder = tmp_path / "www"
    folder.mkdir()
    server = RangeFileServer(folder).start()
    yield folder, server.url
    server.stop()


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def sample_crawl(tmp_path_factory) -> tuple[Path, dict]:
    """(folder of WARC files, the crawl's truth): the sample crawl, Common Crawl's clipped record, and
    Common Crawl's WARC with one broken gzip member."""
    from samplecrawl import build_sample_crawl

    root = tmp_path_factory.mktemp("crawl") / "crawl"
    truth = build_sample_crawl(root, SAMPLE_RECORDS, SAMPLE_FILES, seed=SAMPLE_SEED)
    shutil.copy(FIXTURES / "warc" / "resiliparse_clipped.warc.gz", root)
    data = bytearray((FIXTURES / "warc" / "resiliparse_warcfile.warc.gz").read_bytes())
    inflater = zlib.decompressobj(wbits=31)
    inflater.decompress(bytes(data))
    first_member = len(data) - len(inflater.unused_data)
    data[first_member + 200] ^= 0xFF  # inside the second member (the first request record)
    (root / "broken-cc.warc.gz").write_bytes(bytes(data))
    return root, truth


@pytest.fixture(scope="session")
def pipeline_run(spark, sample_crawl, default_classifier, tmp_path_factory) -> Path:
    """The run folder of `python -m dataprep run --input CRAWL/*.warc.gz --keep-dropped`: DIR/<stage>/."""
    from dataprep.pipeline import SourceSpec, run_pipeline
    from dataprep.schema import DEFAULT_SOURCE

    out = tmp_path_factory.mktemp("pipeline") / "run"
    source = SourceSpec(DEFAULT_SOURCE, "extract", [str(sample_crawl[0] / "*.warc.gz")])
    run_pipeline(spark, [source], str(out), pipeline_run_config(), PIPELINE_OPTIONS, keep_dropped=True)
    return out


@pytest.fixture(scope="session")
def pipeline_shards(pipeline_run, tmp_path_factory) -> Path:
    """The manifest of shards blended from the shared pipeline run's last stage (a 500-token BPE trained
    on it), with their document indexes: lineage from a training sample back to a WARC record."""
    from blending.build import build
    from blending.config import BlendConfig
    from blending.stages import find_stage_folders
    from dataprep.schema import DEFAULT_SOURCE

    last = find_stage_folders(pipeline_run)[-1].path
    out = tmp_path_factory.mktemp("pipeline-shards")
    config = BlendConfig.from_dict({
        "tokenizer": {"file": str(out / "tokenizer" / "tokenizer.json"), "train_vocab_size": 500},
        "shard_size_tokens": 20_000,
        "valid_fraction": 0.2,  # a few dozen documents: 2% might leave the validation split empty
        "sources": [{"name": DEFAULT_SOURCE, "inputs": [str(last)], "weight": 1.0}],
    })
    return build(config, out / "shards", master="local[2]")
