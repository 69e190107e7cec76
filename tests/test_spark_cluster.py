"""The pipeline on a real Spark standalone cluster: a master and two workers on 127.0.0.1, started with
infra/spark/{master,worker}.sh from the installed pyspark, `dataprep/jobs/run.py` (every stage of
`python -m dataprep run`) submitted with infra/spark/submit.sh. The cluster authenticates every
connection with the secret master.sh creates; a driver with another secret is refused.

The cluster's output must be byte-identical to local mode's, also when one worker JVM is killed while
the job runs (its executor goes with it; Spark reruns the lost tasks on the other worker). Everything
the test starts is stopped at the end, on failure too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from samplecrawl import build_sample_crawl

ROOT = Path(__file__).resolve().parents[1]
SPARK = ROOT / "infra" / "spark"
RECORDS, FILES = 400, 2  # 2 WARC files x 200 records
SUBMIT_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _wait_for(what: str, check, timeout_s: float = 120.0, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"gave up waiting for {what} after {timeout_s:.0f} s")


def _processes_under(folder: Path) -> list[int]:
    """Processes whose working folder is inside `folder`: executors and their Python workers run in
    the worker's --work-dir, whatever process group they put themselves in."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    found.append(int(entry.name))
            except OSError:
                continue  # gone, or not ours to look at
    return found


class StandaloneCluster:
    """A master and workers started from infra/spark/*.sh, each in its own process group, logging to
    files under `root`."""

    def __init__(self, root: Path, workers: int = 2):
        self.root = root
        self.port, self.webui_port = _free_port(), _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.secret_file = root / "secret" / "spark.secret"  # master.sh creates it
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_SECRET_FILE": str(self.secret_file),
            # The master's REST submission server wants a fixed port (6066) that a parallel run may hold.
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        }
        self.processes: dict[str, subprocess.Popen] = {}
        root.mkdir(parents=True, exist_ok=True)
        try:
            self._start_daemons(workers)
        except BaseException:
            self.stop()
            raise

    def _start_daemons(self, workers: int) -> None:
        self._start("master", [SPARK / "master.sh"], SPARK_MASTER_HOST="127.0.0.1",
                    SPARK_MASTER_PORT=str(self.port), SPARK_MASTER_WEBUI_PORT=str(self.webui_port))
        _wait_for("the master", lambda: (self.status() or {}).get("status") == "ALIVE")
        for i in range(workers):
            self._start(f"worker{i}", [SPARK / "worker.sh", self.url], SPARK_WORKER_HOST="127.0.0.1",
                        SPARK_WORKER_CORES="1", SPARK_WORKER_MEMORY="1g",
                        SPARK_WORKER_DIR=str(self.root / f"worker{i}"), SPARK_WORKER_WEBUI_PORT=str(_free_port()))
        _wait_for(f"{workers} workers", lambda: (self.status() or {}).get("aliveworkers") == workers)

    def _start(self, name: str, command: list, **env: str) -> None:
        with open(self.root / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(c) for c in command], env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def status(self) -> dict | None:
        """The master's own JSON status page: workers, cores in use, applications."""
        return _get_json(f"http://127.0.0.1:{self.webui_port}/json/")

    def kill(self, name: str) -> None:
        """SIGKILL one daemon's JVM (as a crashed machine would lose it)."""
        self.processes[name].kill()
        self.processes[name].wait()

    def stop(self) -> list[int]:
        """Stop every daemon and whatever runs in their folders; return the pids still alive after."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid in _processes_under(self.root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        return _processes_under(self.root)

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in self.root.glob("*.log"))


def _script_env(**env: str) -> dict:
    """The environment of infra/spark/*.sh: this venv's spark-submit, this checkout's code."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT), "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1", **env}


def submit(master: str, out: Path, crawl: Path, log: Path, ui_port: int, cwd: Path,
           secret_file: Path | None = None) -> subprocess.Popen:
    """The whole pipeline (dataprep/jobs/run.py) as one spark-submit to `master`, in the background,
    authenticating with `secret_file` when given."""
    properties = cwd / "spark.conf"
    properties.write_text(
        "spark.executor.memory 640m\n"
        "spark.driver.memory 1g\n"
        f"spark.ui.port {ui_port}\n"
    )
    env = _script_env(SPARK_MASTER=master, SPARK_PROPERTIES=str(properties))
    if secret_file:
        env["SPARK_SECRET_FILE"] = str(secret_file)
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [str(SPARK / "submit.sh"), "dataprep/jobs/run.py", "--input", f"{crawl}/*.warc.gz", "--source", "cc-sample",
             "--out", str(out), "--num-buckets", "4", "--keep-dropped"],
            cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def finish(job: subprocess.Popen, log: Path) -> None:
    try:
        job.wait(timeout=SUBMIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert job.returncode == 0, log.read_text(errors="replace")[-5000:]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file the run wrote (each stage's folder, the funnel plot), by its path in the run folder."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def completed_tasks(ui_port: int) -> int:
    """Finished tasks of the running application, from the driver's status API."""
    apps = _get_json(f"http://127.0.0.1:{ui_port}/api/v1/applications") or []
    stages = _get_json(f"http://127.0.0.1:{ui_port}/api/v1/applications/{apps[0]['id']}/stages") if apps else None
    return sum(s["numCompleteTasks"] for s in stages or [])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cluster")
    build_sample_crawl(root / "crawl", RECORDS, FILES, seed=5)
    return root


@pytest.fixture(scope="module")
def local_output(work) -> dict[str, bytes]:
    """Local mode's output, written to the same path the cluster runs write (_SUCCESS records paths)."""
    out = work / "out"
    log = work / "local.log"
    finish(submit("local[2]", out, work / "crawl", log, _free_port(), work), log)
    reference = folder_bytes(out)
    shutil.rmtree(out)
    return reference


@pytest.fixture(scope="module")
def cluster(work):
    cluster = StandaloneCluster(work / "cluster")
    try:
        yield cluster
    finally:
        left = cluster.stop()
        assert left == [], f"processes still running after the cluster stopped: {left}"


def _run_on_cluster(cluster: StandaloneCluster, work: Path, name: str, kill_worker: str | None = None) -> dict:
    out, log, ui_port = work / "out", work / f"{name}.log", _free_port()
    started = time.monotonic()
    job = submit(cluster.url, out, work / "crawl", log, ui_port, work, cluster.secret_file)
    try:
        if kill_worker:
            _wait_for("a finished task", lambda: completed_tasks(ui_port) >= 1 or job.poll() is not None,
                      timeout_s=SUBMIT_TIMEOUT_S, every_s=0.1)
            assert job.poll() is None, "the job ended before any task was seen finished"
            app = (cluster.status() or {}).get("activeapps") or []
            assert app and app[0]["cores"] == 2, "both workers' executors should be running the job"
            cluster.kill(kill_worker)
        finish(job, log)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    seconds = time.monotonic() - started
    output = folder_bytes(out)
    shutil.rmtree(out)
    print(f"{name}: {seconds:.1f} s", file=sys.stderr)
    return output


@pytest.mark.slow
def test_cluster_output_is_byte_identical_to_local_mode(local_output, cluster, work):
    output = _run_on_cluster(cluster, work, "cluster")
    assert sorted(output) == sorted(local_output)
    assert [k for k in output if output[k] != local_output[k]] == []
    stages = [k.split("/")[0] for k in output if k.endswith("/stats.json")]
    assert {"extract", "cleanup"} <= set(stages)
    stats = json.loads(output["extract/stats.json"])
    assert stats["in"]["rows"] == RECORDS and stats["kept"]["rows"] > 0
    assert len(cluster.status()["completedapps"]) == 1


@pytest.mark.slow
def test_job_survives_a_killed_worker_and_gives_the_same_bytes(local_output, cluster, work):
    output = _run_on_cluster(cluster, work, "worker-killed", kill_worker="worker1")
    assert [k for k in sorted(set(output) | set(local_output)) if output.get(k) != local_output.get(k)] == []
    status = _wait_for("the master to see the worker gone", lambda: (
        s if (s := cluster.status()) and s["aliveworkers"] == 1 else None), timeout_s=120)
    assert status["aliveworkers"] == 1


def _command_lines() -> str:
    """Every process's command line, as `ps` shows them to any user of the machine."""
    lines = []
    for entry in Path("/proc").iterdir():
        try:
            lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # not a process, or gone
    return "\n".join(lines)


def _app_folders(cluster: StandaloneCluster) -> set[str]:
    """The executors' working folders the workers made, one per application that ran on them."""
    return {p.name for p in cluster.root.glob("worker*/app-*")}


@pytest.mark.slow
def test_a_driver_with_another_secret_is_refused_and_runs_nothing(cluster, work):
    assert cluster.secret_file.stat().st_mode & 0o777 == 0o600
    secret = cluster.secret_file.read_text()
    assert len(secret) == 64 and int(secret, 16) >= 0  # 32 random bytes in hex
    wrong = work / "wrong.secret"
    wrong.write_text("0" * 64)
    wrong.chmod(0o600)
    apps_before, folders_before = cluster.status()["completedapps"], _app_folders(cluster)
    log = work / "refused.log"
    job = submit(cluster.url, work / "refused", work / "crawl", log, _free_port(), work, wrong)
    try:
        # Spark retries the registration 3 times, 20 s apart, before giving up: the first refusal will do.
        _wait_for("the master to refuse the driver", lambda: job.poll() is not None or "Failed to connect to master"
                  in log.read_text(errors="replace"), timeout_s=SUBMIT_TIMEOUT_S)
        assert secret not in _command_lines() and "0" * 64 not in _command_lines()
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert "SaslException" in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]
    status = cluster.status()
    assert status["activeapps"] == [] and status["completedapps"] == apps_before
    assert _app_folders(cluster) == folders_before  # no executor started for it


def _run_script(script: str, secret_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SPARK / script), *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=_script_env(SPARK_MASTER="spark://127.0.0.1:1", SPARK_SECRET_FILE=str(secret_file)))


@pytest.mark.parametrize("script, args", [("submit.sh", ["dataprep/jobs/run.py"]),
                                          ("worker.sh", ["spark://127.0.0.1:1"])])
def test_scripts_refuse_a_missing_or_shared_secret_in_one_line(tmp_path, script, args):
    missing = _run_script(script, tmp_path / "absent.secret", *args)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "absent.secret (SPARK_SECRET_FILE)" in missing.stderr
    shared = tmp_path / "shared.secret"
    shared.write_text("0" * 64)
    shared.chmod(0o644)
    refused = _run_script(script, shared, *args)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "shared.secret (SPARK_SECRET_FILE) is readable by others (mode 644)" in refused.stderr


def test_masters_starting_at_once_create_one_private_secret(tmp_path):
    secret_file = tmp_path / "config" / "spark.secret"
    create = f"source {SPARK / 'secret.sh'} && create_spark_secret"
    runs = [subprocess.Popen(["bash", "-c", create], env={**os.environ, "SPARK_SECRET_FILE": str(secret_file)},
                             stderr=subprocess.PIPE, text=True) for _ in range(4)]
    notices = [run.communicate(timeout=60)[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4
    assert sum("created the cluster's Spark secret" in n for n in notices) == 1  # one won, the rest kept it
    assert os.listdir(secret_file.parent) == ["spark.secret"]  # no temporary left behind
    assert secret_file.stat().st_mode & 0o777 == 0o600 and secret_file.parent.stat().st_mode & 0o777 == 0o700
    assert len(bytes.fromhex(secret_file.read_text())) == 32


def test_drivers_read_the_secret_as_the_daemons_do_and_refuse_a_shared_one(tmp_path):
    from blending.spark_session import cluster_secret

    secret_file = tmp_path / "spark.secret"
    secret_file.write_text("ab" * 32 + "\n")  # bash's $(< file) drops the newline too
    secret_file.chmod(0o600)
    assert cluster_secret(str(secret_file)) == "ab" * 32
    secret_file.chmod(0o640)
    with pytest.raises(ValueError, match=r"spark.secret \(SPARK_SECRET_FILE\) is readable by others \(mode 640\)"):
        cluster_secret(str(secret_file))
    with pytest.raises(ValueError, match=r"absent \(SPARK_SECRET_FILE\): No such file"):
        cluster_secret(str(tmp_path / "absent"))
