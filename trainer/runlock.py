"""One live run per run folder: RUN/run.lock names the run that owns the folder.

    lock = acquire(run_dir)        # raises RunLocked naming the live run's host and pid
    ...
    lock.release()

The lock file is JSON {host, pid, pid_start, started, command}, created with O_EXCL so two runs
cannot both create it. A lock whose run is gone is stale and is taken over: on the same host the
pid is checked (and its start time, so a reused pid is not mistaken for the run); a run on another
host cannot be probed, so its rank 0 refreshes the file's mtime every HEARTBEAT_S and a lock older
than STALE_AFTER_S is stale. A run killed with SIGKILL therefore never blocks its folder for good.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "run.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0


class RunLocked(RuntimeError):
    """The run folder belongs to a live run."""


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (Linux /proc), None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the command name


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    if start_time is not None:
        now = process_start_time(pid)
        if now is not None and now != start_time:
            return False  # the pid was reused by another process
        if _is_zombie(pid):
            return False
    return True


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@dataclass
class Holder:
    host: str
    pid: int
    pid_start: int | None
    started: str
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started} ({self.command})"


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text())
        return Holder(host=data["host"], pid=int(data["pid"]), pid_start=data.get("pid_start"),
                      started=data["started"], command=data.get("command", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # gone, or written by a process that died mid-write


def holder_is_live(holder: Holder, path: Path, now: float | None = None) -> bool:
    if holder.host == socket.gethostname():
        return pid_alive(holder.pid, holder.pid_start)
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except OSError:
        return False
    return age < STALE_AFTER_S


class RunLock:
    def __init__(self, path: Path, holder: Holder):
        self.path = path
        self.holder = holder
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        current = read_holder(self.path)
        if current is not None and (current.host, current.pid) == (self.holder.host, self.holder.pid):
            self.path.unlink(missing_ok=True)


def acquire(run_dir: str | Path, log=print) -> RunLock:
    """Take RUN/run.lock for this process or raise RunLocked naming the live run that holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    me = Holder(host=socket.gethostname(), pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                started=time.strftime("%Y-%m-%d %H:%M:%S %z"), command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_holder(path)
            if holder is None and _younger_than(path, 5.0):  # being written right now
                time.sleep(0.2)
                continue
            if holder is not None and holder_is_live(holder, path):
                raise RunLocked(f"{run_dir} is in use by a live run: {holder.describe()}; stop that run or "
                                f"choose another --out (the lock is {path})") from None
            _take_over(path, holder, log)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(me.__dict__, handle)
            handle.flush()
            os.fsync(handle.fileno())
        return RunLock(path, me)
    raise RunLocked(f"could not take {path}: other runs keep taking it")


def _younger_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def _take_over(path: Path, holder: Holder | None, log) -> None:
    """Move a stale lock aside (atomically, so two runs taking over cannot both succeed on it)."""
    aside = path.with_name(f".{LOCK_NAME}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another run took it over first; try again
    moved = read_holder(aside)
    if holder is not None and moved is not None and (moved.host, moved.pid) != (holder.host, holder.pid):
        os.rename(aside, path)  # a fresh lock replaced the stale one meanwhile: put it back
        return
    aside.unlink(missing_ok=True)
    what = holder.describe() if holder is not None else "an unreadable lock file"
    log(f"note: taking over {path} from a run that is gone: {what}")
