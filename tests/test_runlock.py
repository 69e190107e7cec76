"""RUN/run.lock: one live run per run folder, judged by a heartbeat counter, never taken from a live run.

The fast tests hold locks in this process; the slow ones race real processes that simulate other
hosts (MTNLG_HOSTNAME) and run a real one-process `trainer.train` against a lock it does not hold.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import build_prose_shards, launch_env
from trainer import runlock

ROOT = Path(__file__).resolve().parents[1]

# A run that holds RUN's lock until it reads a line on stdin, then says whether it still holds it.
HOLDER = """
import sys
from trainer import runlock
try:
    lock = runlock.acquire(sys.argv[1], log=lambda text: None, heartbeat_s=float(sys.argv[2]),
                           stale_after_s=float(sys.argv[3]))
except runlock.RunLocked as error:
    print("locked:", error, flush=True)
    sys.exit(1)
print("token:", lock.holder.token, flush=True)
sys.stdin.readline()
try:
    lock.check()
    print("held", flush=True)
except runlock.RunLockLost as error:
    print("lost:", error, flush=True)
lock.release()
"""


def start_holder(run_dir: Path, host: str, heartbeat_s: float = 0.1, stale_after_s: float = 1.0) -> subprocess.Popen:
    env = {**launch_env(), runlock.HOSTNAME_ENV: host}
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), str(heartbeat_s), str(stale_after_s)],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def first_line(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"pid {proc.pid} said nothing in {timeout} s"
    return proc.stdout.readline().strip()


def finish(proc: subprocess.Popen) -> str:
    """Let a holder check its lock and exit; its last line."""
    out, _ = proc.communicate("\n", timeout=30)
    return out.strip()


def token_in(run_dir: Path) -> str:
    return json.loads((run_dir / runlock.LOCK_NAME).read_text())["token"]


def other_run(host: str = "elsewhere", pid: int = 1, beat: int = 0) -> runlock.Holder:
    return runlock.Holder(token="f" * 32, host=host, pid_space=None, pid=pid, pid_start=None, started="x",
                          command="trainer.train", beat=beat)


def write_lock(run_dir: Path, data: bytes) -> None:
    os.replace(runlock.write_atomically(run_dir / runlock.LOCK_NAME, data), run_dir / runlock.LOCK_NAME)


def pause_outside_guard(proc: subprocess.Popen, run_dir: Path) -> None:
    """SIGSTOP `proc` at a moment it does not hold the guard (a paused holder would block the taker)."""
    while True:
        os.kill(proc.pid, signal.SIGSTOP)
        fd = os.open(run_dir / runlock.GUARD_NAME, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.01)
        finally:
            os.close(fd)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- one process ---------------------------------------------------------------------------------------------


def test_the_owner_advances_a_counter_and_a_second_run_on_the_host_is_refused(tmp_path):
    lock = runlock.acquire(tmp_path, heartbeat_s=0.02)
    first = json.loads((tmp_path / "run.lock").read_text())
    wait_until(lambda: json.loads((tmp_path / "run.lock").read_text())["beat"] > first["beat"] + 2)
    assert first["token"] == lock.holder.token and len(first["token"]) == 32
    with pytest.raises(runlock.RunLocked, match=f"pid {os.getpid()} on host {runlock.hostname()}"):
        runlock.acquire(tmp_path)
    lock.check()
    lock.release()
    assert not (tmp_path / "run.lock").exists()
    assert [p.name for p in tmp_path.iterdir()] == [runlock.GUARD_NAME]  # no temporary file left


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = runlock.Holder(token="d" * 32, host=runlock.hostname(), pid_space=runlock.pid_space(), pid=dead.pid,
                            pid_start=None, started="x", command="x")
    write_lock(tmp_path, holder.encode())
    notes = []
    lock = runlock.acquire(tmp_path, log=notes.append)
    assert f"pid {dead.pid}" in notes[0] and "gone" in notes[0] and token_in(tmp_path) == lock.holder.token
    lock.release()


def test_a_pid_from_another_pid_namespace_is_judged_by_its_counter(tmp_path):
    # This process's own pid, alive, but written by a container with another pid namespace: not probed.
    holder = runlock.Holder(token="c" * 32, host=runlock.hostname(), pid_space="other-boot/pid:[1]",
                            pid=os.getpid(), pid_start=runlock.process_start_time(os.getpid()), started="x", command="x")
    write_lock(tmp_path, holder.encode())
    notes = []
    lock = runlock.acquire(tmp_path, log=notes.append, stale_after_s=0.3)
    assert "waiting up to 0.3 s" in notes[0] and "took over" in notes[1]
    lock.release()


def test_an_unreadable_lock_is_taken_only_after_it_stays_unchanged(tmp_path):
    write_lock(tmp_path, b"\x00garbage")
    started = time.monotonic()
    notes = []
    lock = runlock.acquire(tmp_path, log=notes.append, stale_after_s=0.5)
    assert time.monotonic() - started >= 0.5 and "an unreadable lock file" in notes[-1]
    lock.release()


def test_an_owner_whose_heartbeat_cannot_be_written_stops_before_its_next_save(tmp_path):
    run_dir = tmp_path / "run"
    lock = runlock.acquire(run_dir, heartbeat_s=0.02)
    lock.check()
    shutil.rmtree(run_dir)  # the folder is gone (as a read-only or failed mount would refuse writes)
    wait_until(lambda: lock.lost_because is not None)
    with pytest.raises(runlock.RunLockLost, match="heartbeat could not be written.*before writing a checkpoint"):
        lock.check()
    lock.release()


def test_an_owner_whose_lock_was_replaced_stops_and_leaves_the_new_lock(tmp_path):
    lock = runlock.acquire(tmp_path, heartbeat_s=0.02)
    write_lock(tmp_path, other_run().encode())
    with pytest.raises(runlock.RunLockLost, match="taken over by pid 1 on host elsewhere"):
        lock.check()
    wait_until(lambda: lock.lost_because is not None)
    lock.release()
    assert token_in(tmp_path) == other_run().token


def test_a_lock_that_cannot_be_read_is_one_line(tmp_path):
    (tmp_path / "run.lock").mkdir()
    with pytest.raises(runlock.RunLocked, match="cannot take the run lock .*run.lock"):
        runlock.acquire(tmp_path)


# --- several processes ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_live_owner_on_another_host_keeps_its_lock_until_it_stops_beating(tmp_path):
    owner = start_holder(tmp_path, "host-a")
    owner_token = first_line(owner).removeprefix("token: ")
    refused = start_holder(tmp_path, "host-b")
    assert refused.wait(timeout=30) == 1
    assert first_line(refused).startswith(f"locked: {tmp_path} is in use by a live run: pid {owner.pid} on host host-a")
    pause_outside_guard(owner, tmp_path)  # alive but silent (a paused job, a hung filesystem)
    try:
        taker = start_holder(tmp_path, "host-b")
        taker_token = first_line(taker).removeprefix("token: ")
    finally:
        os.kill(owner.pid, signal.SIGCONT)
    assert taker_token not in ("", owner_token) and token_in(tmp_path) == taker_token
    assert finish(owner).startswith(f"lost: this run no longer holds {tmp_path / 'run.lock'}: it was taken over by "
                                    f"pid {taker.pid} on host host-b")
    assert finish(taker) == "held"


@pytest.mark.slow
def test_two_runs_racing_on_an_unreadable_lock_one_wins_and_the_loser_deletes_nothing(tmp_path):
    write_lock(tmp_path, b"{not json")
    runs = [start_holder(tmp_path, "host-a") for _ in range(2)]
    lines = [first_line(run) for run in runs]
    winners = [run for run, line in zip(runs, lines) if line.startswith("token: ")]
    assert len(winners) == 1, lines
    loser = runs[1 - runs.index(winners[0])]
    assert loser.wait(timeout=30) == 1 and "is in use by a live run" in lines[runs.index(loser)]
    assert token_in(tmp_path) == lines[runs.index(winners[0])].removeprefix("token: ")
    assert finish(winners[0]) == "held"


@pytest.mark.slow
def test_a_training_run_without_the_lock_writes_no_checkpoint(tmp_path):
    manifest = build_prose_shards(tmp_path / "shards")
    run_dir = tmp_path / "run"
    long_run = {"parallel.tensor": 1, "parallel.pipeline": 1, "model.num_layers": 2, "model.hidden_size": 32,
                "model.seq_length": 32, "batch.micro_batch_size": 4, "batch.global_batch_size": 16,
                "batch.rampup_start": 16, "train_tokens": 10_000 * 16 * 32, "run.log_interval": 1,
                "run.eval_interval": 0, "run.save_interval": 0}
    command = [sys.executable, "-m", "trainer.train", "--manifest", str(manifest), "--out", str(run_dir),
               *[arg for key, value in long_run.items() for arg in ("--set", f"{key}={value}")]]
    # refused at the start: the folder's lock belongs to a live run on another host
    other = start_holder(run_dir, "host-a")
    assert first_line(other).startswith("token: ")
    refused = subprocess.run(command, cwd=ROOT, env=launch_env(), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"error: {run_dir} is in use by a live run: pid {other.pid} on host host-a, started "
        f"{json.loads((run_dir / 'run.lock').read_text())['started']} (-c {run_dir} 0.1 1.0); stop that run or "
        f"choose another --out (the lock is {run_dir / 'run.lock'})"]
    assert finish(other) == "held" and not (run_dir / "checkpoints").exists()
    # the lock taken from under a training run: it stops before its first checkpoint
    log = (tmp_path / "train.log").open("w")
    training = subprocess.Popen(command, cwd=ROOT, env=launch_env(), stdout=log, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (run_dir / "metrics.csv").exists() and len((run_dir / "metrics.csv").read_text().splitlines()) >= 2,
                   timeout=300)
        write_lock(run_dir, other_run(host="host-b", pid=4242).encode())
        _, err = training.communicate(timeout=120)
    finally:
        if training.poll() is None:
            training.kill()
    assert training.returncode == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"error: this run no longer holds {run_dir / 'run.lock'}: it was taken over by pid 4242 on host host-b, "
        "started x (trainer.train); stopped before writing a checkpoint (resume the run once the folder is free)"]
    assert not (run_dir / "checkpoints").exists() and token_in(run_dir) == other_run().token
