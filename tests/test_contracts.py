"""The stage contracts: doc_id, the accounting invariant, atomic output, reuse/refuse/overwrite, byte identity."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from blending.spark_session import get_spark
from blending.stage_folder import InputError, OutputExistsError, folder_record
from blending.stage_stats import AccountingError, StageStats
from dataprep.config import DataprepConfig, OutputConfig, config_hash
from dataprep.framework.spark_folders import read_input_folders
from dataprep.schema import bucket_of, doc_id
from tests.helpers import DDL, REASONS, StageOutput, contract_rows

ROOT = Path(__file__).resolve().parents[1]
@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(contract_rows(3000), DDL)


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_doc_id_is_stable_across_processes():
    ours = doc_id("cc-2020-34", "CC-MAIN-x.warc.gz@1234")
    code = "from dataprep.schema import doc_id; print(doc_id('cc-2020-34', 'CC-MAIN-x.warc.gz@1234'))"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        theirs = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert theirs.stdout.strip() == ours
    assert ours == hashlib.sha1(b"cc-2020-34\0CC-MAIN-x.warc.gz@1234").hexdigest()[:16]
    assert doc_id("other", "CC-MAIN-x.warc.gz@1234") != ours


def test_invariant_rejects_lost_rows():
    stats = StageStats("x", in_rows=10, kept_rows=6, dropped={"too_short": 3})
    with pytest.raises(AccountingError, match="in.rows 10"):
        stats.check()
    stats.dropped["too_short"] = 4
    stats.check()


def test_write_accounts_for_every_row_and_buckets_sorted(frame, tmp_path):
    out = tmp_path / "out"
    config = OutputConfig(num_buckets=4, rows_per_row_group=256)
    stats = StageOutput(str(out), "test", [], "h").write(frame, config, REASONS, keep_dropped=True, expected_in_rows=3000)
    expected_dropped = {"non_english": sum(1 for i in range(3000) if i % 7 == 0)}
    expected_dropped["too_short"] = sum(1 for i in range(3000) if i % 7 and i % 5 == 0)
    assert stats.dropped == expected_dropped
    assert stats.in_rows == 3000 == stats.kept_rows + sum(stats.dropped.values())
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk["in"]["rows"] == 3000 and on_disk["dropped"] == expected_dropped
    assert list(on_disk["dropped"]) == REASONS  # the stage's order, as the funnel prints it
    parts = sorted(out.glob("part-*.parquet"))
    assert [p.name for p in parts] == [f"part-{b:05d}.parquet" for b in range(4)]
    kept = 0
    for b, part in enumerate(parts):
        table = pq.read_table(part)
        ids = table.column("doc_id").to_pylist()
        assert ids == sorted(ids)
        assert {bucket_of(i, 4) for i in ids} <= {b}
        assert "drop_reason" not in table.column_names and "in_bytes" not in table.column_names
        kept += table.num_rows
    assert kept == stats.kept_rows
    dropped = pq.read_table(out / "dropped").column("drop_reason").to_pylist()
    assert sorted(set(dropped)) == REASONS and len(dropped) == sum(expected_dropped.values())
    index = pq.read_table(out / "dropped_index")
    assert index.column_names == ["doc_id", "origin", "drop_reason"]
    assert sorted(index.to_pylist(), key=lambda r: r["doc_id"]) == sorted(
        pq.read_table(out / "dropped", columns=index.column_names).to_pylist(), key=lambda r: r["doc_id"])
    assert json.loads((out / "_SUCCESS").read_text())["stage"] == "test"
    assert "too_short" in stats.funnel_table() and "3,000" in stats.funnel_table()


def test_byte_identical_with_1_and_4_partitions(frame, tmp_path):
    config = OutputConfig(num_buckets=3, rows_per_row_group=100)
    results = []
    for parts in (1, 4):
        out = tmp_path / f"p{parts}"
        StageOutput(str(out), "test", [], "h").write(frame.repartition(parts), config, REASONS, keep_dropped=True)
        results.append(_hashes(out))
    assert results[0] == results[1]
    assert len(results[0]) == 3 + 3 + 3 + 2  # parts, dropped index, dropped parts, stats.json, _SUCCESS


def test_undeclared_drop_reason_is_an_error(frame, tmp_path):
    with pytest.raises(AccountingError, match="undeclared drop reason 'too_short'"):
        StageOutput(str(tmp_path / "o"), "test", [], "h").write(frame, OutputConfig(num_buckets=2), ["non_english"])
    assert not (tmp_path / "o").exists()


def test_reuse_refuse_overwrite(frame, tmp_path):
    out = str(tmp_path / "out")
    config = OutputConfig(num_buckets=2)
    inputs = [{"path": "a.warc.gz", "size": 10}]
    first = StageOutput(out, "test", inputs, config_hash(config))
    assert not first.reusable()
    first.write(frame, config, REASONS)
    # without keep_dropped the dropped rows are still traceable: their index is always written
    assert not (Path(out) / "dropped").exists()
    assert pq.read_table(Path(out) / "dropped_index").num_rows == 3000 - first.load_stats().kept_rows
    assert StageOutput(out, "test", inputs, config_hash(config)).reusable()
    assert first.load_stats().in_rows == 3000
    # asked for the dropped rows, the same output without them is written again, now with them
    wanting_dropped = StageOutput(out, "test", inputs, config_hash(config), keep_dropped=True)
    assert not wanting_dropped.reusable()
    wanting_dropped.write(frame, config, REASONS, keep_dropped=True)
    assert pq.read_table(Path(out) / "dropped").num_rows == 3000 - first.load_stats().kept_rows
    assert wanting_dropped.reusable() and StageOutput(out, "test", inputs, config_hash(config)).reusable()

    other_config = OutputConfig(num_buckets=3)
    with pytest.raises(OutputExistsError, match="config_hash"):
        StageOutput(out, "test", inputs, config_hash(other_config)).reusable()
    with pytest.raises(OutputExistsError, match="inputs"):
        StageOutput(out, "test", [{"path": "b.warc.gz", "size": 10}], config_hash(config)).reusable()

    replacing = StageOutput(out, "test", inputs, config_hash(other_config), overwrite=True)
    assert not replacing.reusable()
    replacing.write(frame, other_config, REASONS)
    assert len(list(Path(out).glob("part-*.parquet"))) == 3
    assert not list(tmp_path.glob("out.*"))  # no temporary or old folders left behind


def test_read_stage_output_refuses_incomplete_folder(spark, frame, tmp_path):
    out = tmp_path / "out"
    StageOutput(str(out), "test", [], "h").write(frame, OutputConfig(num_buckets=2), REASONS)
    folders = read_input_folders(spark, [str(out)])
    assert folders.documents.count() == folders.rows == 3000 - sum(1 for i in range(3000) if i % 7 == 0 or i % 5 == 0)
    (record,) = folders.records
    assert [p["name"] for p in record["parts"]] == ["part-00000.parquet", "part-00001.parquet"]
    assert record["stage"] == "test" and record["config_hash"] == "h" and len(record["success_sha256"]) == 64
    # a copy of the folder is recorded alike: the record names no path
    import shutil

    shutil.copytree(out, tmp_path / "copy")
    assert folder_record(str(tmp_path / "copy")) == record
    (out / "_SUCCESS").unlink()
    with pytest.raises(InputError, match="_SUCCESS"):
        read_input_folders(spark, [str(out)])


def test_failing_stage_leaves_no_output(spark, tmp_path):
    from pyspark.sql import functions as F

    def explode(text):
        raise ValueError("bad row")

    df = spark.createDataFrame(contract_rows(50), DDL).withColumn("text", F.udf(explode, "string")("text"))
    with pytest.raises(Exception, match="bad row"):
        StageOutput(str(tmp_path / "out"), "test", [], "h").write(df, OutputConfig(num_buckets=2), REASONS)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_killed_stage_leaves_no_complete_looking_folder(tmp_path):
    # A real job killed with SIGKILL while its tasks write: OUT must not exist, only OUT.tmp-* remains.
    script = textwrap.dedent(
        f"""
        import time
        from pyspark.sql import functions as F
        from dataprep.config import OutputConfig
        from blending.spark_session import get_spark
        from tests.helpers import DDL, REASONS, StageOutput, contract_rows

        def slow(text):
            time.sleep(0.05)
            return text

        spark = get_spark("local[2]")
        df = spark.createDataFrame(contract_rows(2000), DDL).withColumn("text", F.udf(slow, "string")("text"))
        StageOutput({str(tmp_path / "out")!r}, "test", [], "h").write(df, OutputConfig(num_buckets=2), REASONS)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob("out.tmp-*")) and time.time() < deadline:
            assert proc.poll() is None, "the job ended before it started writing"
            time.sleep(0.2)
        assert list(tmp_path.glob("out.tmp-*")), "the job never started writing"
        time.sleep(1.0)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("out.tmp-*/_SUCCESS"))


def test_get_spark_returns_the_active_session_only_as_asked_for(spark):
    # The active session is returned when the call asks for what it has (the app name is not asked for) ...
    assert get_spark() is spark
    assert get_spark("local[2]", app_name="another", conf={"spark.sql.adaptive.enabled": False}) is spark
    assert get_spark(conf={"spark.sql.session.timeZone": "UTC", "spark.driver.memory": "4g"}) is spark
    # ... and a master or setting it does not have is an error, not a session that silently differs.
    with pytest.raises(RuntimeError, match=r"master 'local\[4\]' \(the active session's: 'local\[2\]'\)"):
        get_spark("local[4]")
    with pytest.raises(RuntimeError, match="spark.sql.session.timeZone='Europe/Paris'"):
        get_spark("local[2]", conf={"spark.sql.session.timeZone": "Europe/Paris"})
    with pytest.raises(RuntimeError, match="spark.executor.cores='3' \\(the active session's: None\\)"):
        get_spark(conf={"spark.executor.cores": 3})
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_config_defaults_are_the_papers(tmp_path):
    config = DataprepConfig()
    assert (config.dedup.num_perm, config.dedup.bands, config.dedup.rows_per_band) == (260, 20, 13)
    assert config.cleanup.min_chars == 512 and config.cleanup.javascript_max_chars == 256
    assert config.quality.pareto_alpha == 3.0 and config.decontamination.ngram == 13
    override = tmp_path / "c.yaml"
    override.write_text("cleanup:\n  languages: [en, de]\n  min_chars: 300\n")
    loaded = DataprepConfig.load(override)
    assert loaded.cleanup.languages == ("en", "de") and loaded.cleanup.min_chars == 300
    override.write_text("cleanup:\n  min_char: 300\n")
    with pytest.raises(ValueError, match="cleanup.min_char"):
        DataprepConfig.load(override)
    assert config_hash(DataprepConfig().cleanup) == config_hash(DataprepConfig().cleanup)
    assert config_hash(loaded.cleanup) != config_hash(config.cleanup)


def test_replacing_a_folder_never_leaves_it_missing(tmp_path):
    # A reader polling OUT while it is replaced again and again never finds it missing or half-written:
    # the new folder is synced to disk and exchanged with the old one in one rename.
    import threading

    from blending.stage_folder import swap_into_place

    out = tmp_path / "out"
    out.mkdir()
    (out / "_SUCCESS").write_text("0")
    seen, done = [], threading.Event()

    def read():
        while not done.is_set():
            try:
                seen.append((out / "_SUCCESS").read_text())
            except FileNotFoundError:
                seen.append(None)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 300):
            tmp = tmp_path / f"out.tmp-{i}"
            tmp.mkdir()
            (tmp / "part-00000.parquet").write_bytes(b"x" * i)
            (tmp / "_SUCCESS").write_text(str(i))
            swap_into_place(str(tmp), str(out))
    finally:
        done.set()
        reader.join()
    assert None not in seen and len(seen) > 300
    assert (out / "_SUCCESS").read_text() == "299" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
