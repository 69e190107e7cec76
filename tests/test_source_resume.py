"""Per-file resume of a source stage: the driver of an extract over several WARC files is SIGKILLed once
some files are finished; the rerun reads only the others and writes the same bytes as a run that was
never interrupted. Finished files are shown not to be read again: before the rerun they are replaced by
garbage of the same size, which would fail the run if it were read.

Where the kill lands is made certain, not left to timing: the fourth file is a named pipe during the
killed run, so its task waits there while the three files before it finish (one core: one file at a
time, in order)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataprep.framework.finished_files import FinishedFiles, FolderInUseError
from samplecrawl import build_sample_crawl

# Slow tier: subprocess stage runs, one of them SIGKILLed.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FILES, RECORDS = 6, 240


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "crawl"
    build_sample_crawl(root, RECORDS, FILES, seed=11)
    return root


def extract(crawl: Path, out: Path) -> list[str]:
    # one core: files are read one after the other, so the kill lands between files
    return [sys.executable, "-m", "dataprep", "extract", "--input", f"{crawl}/*.warc.gz", "--output", str(out),
            "--master", "local[1]", "--num-buckets", "4", "--keep-dropped"]


def run_to_end(command: list[str]) -> str:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def kill_when_stored(command: list[str], out: Path, finished: int, log: Path) -> Path:
    """Start the stage, SIGKILL its driver (and its JVM) once `finished` files are stored; the store."""
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        stores: list[Path] = []
        try:
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline and process.poll() is None:
                stores = list(out.parent.glob(f"{out.name}.tmp-*"))
                assert len(stores) <= 1, stores  # one work folder, no other temporary output
                if stores and len(list(stores[0].glob("*.json"))) >= finished:
                    break
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    return stores[0]


def test_a_killed_extract_reads_only_the_unfinished_files_again(crawl, tmp_path):
    reference = tmp_path / "reference"
    run_to_end(extract(crawl, reference))

    files = sorted(crawl.glob("*.warc.gz"))
    gate = files[3]
    gate.rename(tmp_path / gate.name)
    os.mkfifo(gate)
    out = tmp_path / "out"
    try:
        store = kill_when_stored(extract(crawl, out), out, 3, tmp_path / "killed.log")
    finally:
        gate.unlink()
        (tmp_path / gate.name).rename(gate)
    assert not out.exists()  # nothing that looks like a finished output
    stored = {json.loads(p.read_text())["path"] for p in store.glob("*.json")}
    assert stored == {str(f) for f in files[:3]}
    for path in stored:  # same size, no WARC record left: reading it again would fail the run
        Path(path).write_bytes(b"\0" * Path(path).stat().st_size)

    log = run_to_end(extract(crawl, out))
    assert f"3 of {FILES} input files finished by an earlier run" in log
    assert folder_bytes(out) == folder_bytes(reference)
    assert list(tmp_path.glob("out.tmp-*")) == []  # removed once the output is in place
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in"]["rows"] == RECORDS and stats["extra"]["bad_files"] == []


def test_two_runs_never_share_the_folder(tmp_path):
    inputs = [{"path": "/data/a.warc.gz", "size": 10}]
    first = FinishedFiles(str(tmp_path / "out"), ["extract", "1", "abc"], inputs)
    second = FinishedFiles(str(tmp_path / "out"), ["extract", "1", "abc"], inputs)
    assert first.uri == second.uri and first.uri.startswith(str(tmp_path / "out.tmp-"))
    with first.locked():
        with pytest.raises(FolderInUseError, match="in use by another run"):
            with second.locked():
                pass
    with second.locked():  # released with its holder
        pass
    other_config = FinishedFiles(str(tmp_path / "out"), ["extract", "1", "def"], inputs)
    assert other_config.uri != first.uri
    changed = FinishedFiles(str(tmp_path / "out"), ["extract", "1", "abc"], [{"path": "/data/a.warc.gz", "size": 11}])
    assert changed.keys != first.keys  # a file whose size changed is read again
