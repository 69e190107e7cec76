"""One live run per run folder: RUN/run.lock names the run that owns the folder.

    lock = acquire(run_dir)        # raises RunLocked naming the live run's host and pid
    ...
    lock.check()                   # before each save: raises RunLockLost when the lock is no longer held
    lock.release()

How the lock is created, judged stale and taken over is in docs/runlock.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NoReturn

from blending.atomic import fsync_path

LOCK_NAME = "run.lock"
GUARD_NAME = "run.lock.guard"
HOSTNAME_ENV = "MTNLG_HOSTNAME"  # stands in for the host name (tests simulate two hosts with it)
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
POLL_S = 0.25
ATTEMPTS = 5


class RunLocked(RuntimeError):
    """The run folder belongs to a live run."""


class RunLockLost(RuntimeError):
    """This run no longer holds its folder's lock."""


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


def hostname() -> str:
    return os.environ.get(HOSTNAME_ENV) or socket.gethostname()


def pid_space() -> str | None:
    """The kernel boot and pid namespace this process sees its pids in, None where unknown. Two
    containers on one host share the boot id but not the namespace; two hosts may share the
    namespace's inode (the initial one) but not the boot id."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


@dataclass(frozen=True)
class Holder:
    token: str
    host: str
    pid_space: str | None
    pid: int
    pid_start: int | None
    started: str
    command: str
    beat: int = 0

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started} ({self.command})"

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def pids_comparable(self) -> bool:
        """Whether this process can probe the holder's pid: same host name, boot and pid namespace."""
        here = pid_space()
        return here is not None and (self.host, self.pid_space) == (hostname(), here)


def parse_holder(data: bytes) -> Holder | None:
    try:
        fields = json.loads(data)
        return Holder(token=str(fields["token"]), host=str(fields["host"]), pid_space=fields.get("pid_space"),
                        pid=int(fields["pid"]), pid_start=fields.get("pid_start"), started=str(fields["started"]),
                        command=str(fields.get("command", "")), beat=int(fields["beat"]))
    except (ValueError, KeyError, TypeError):
        return None  # not a lock this module wrote


def read_lock(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@contextmanager
def guarded(run_dir: Path):
    """Hold RUN/run.lock.guard (flock) while reading and then replacing run.lock, so that the pair is
    one step. Why a flock'd guard rather than renaming the stale file aside: renaming leaves a moment
    with no lock, and a heartbeat's rename would still replace a takeover's lock unseen
    (docs/runlock.md)."""
    fd = os.open(run_dir / GUARD_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> Path:
    """`data` in a fsynced temporary file next to `path`, returned for the caller to link or rename."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    except OSError:
        temp.unlink(missing_ok=True)  # a full disk must not leave partial lock files behind
        raise
    finally:
        os.close(fd)
    return temp


def create(path: Path, holder: Holder) -> bool:
    """Publish `holder` as the lock if there is none: link() of a complete file fails when the name
    exists, so the lock never appears half written and two runs cannot both create it."""
    temp = write_atomically(path, holder.encode())
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink()
    fsync_path(path.parent)
    return True


def replace_if_unchanged(path: Path, expected: bytes | None, holder: Holder) -> bool:
    """Under the guard: write `holder` over run.lock only while it still holds exactly `expected`."""
    with guarded(path.parent):
        if read_lock(path) != expected:
            return False
        os.replace(write_atomically(path, holder.encode()), path)
        fsync_path(path.parent)
    return True


class RunLock:
    """The lock this run holds; a thread advances its heartbeat counter every `heartbeat_s`."""

    def __init__(self, path: Path, holder: Holder, heartbeat_s: float = HEARTBEAT_S):
        self.path = path
        self.holder = holder
        self.lost_because: str | None = None
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._beat_until_stopped, args=(heartbeat_s,),
                                      name="run-lock-heartbeat", daemon=True)
        self._beat.start()

    def _beat_until_stopped(self, heartbeat_s: float) -> None:
        while self.lost_because is None and not self._stop.wait(heartbeat_s):
            try:
                self.beat()
            except RunLockLost as error:
                self.lost_because = str(error)
            except OSError as error:  # the run cannot show it is alive: another run may take the folder
                self.lost_because = f"its heartbeat could not be written ({error})"

    def beat(self) -> None:
        """Advance the counter in the lock file, if the file still names this run."""
        with guarded(self.path.parent):
            self._raise_unless_mine(read_lock(self.path))
            following = replace(self.holder, beat=self.holder.beat + 1)
            os.replace(write_atomically(self.path, following.encode()), self.path)
            self.holder = following

    def _raise_unless_mine(self, data: bytes | None) -> None:
        if data is None:
            raise RunLockLost("the lock file was removed")
        current = parse_holder(data)
        if current is None:
            raise RunLockLost("the lock file was overwritten with something unreadable")
        if current.token != self.holder.token:
            raise RunLockLost(f"it was taken over by {current.describe()}")

    def check(self) -> None:
        """Raise RunLockLost, naming why, unless this run still holds the lock (called before each save)."""
        try:
            if self.lost_because is None:
                self._raise_unless_mine(read_lock(self.path))
        except RunLockLost as error:
            self.lost_because = str(error)
        except OSError as error:
            self.lost_because = f"the lock file could not be read ({error})"
        if self.lost_because is not None:
            raise RunLockLost(f"this run no longer holds {self.path}: {self.lost_because}; stopped "
                              "before writing a checkpoint (resume the run once the folder is free)")

    def release(self) -> None:
        self._stop.set()
        self._beat.join()
        try:
            with guarded(self.path.parent):
                current = parse_holder(read_lock(self.path) or b"")
                if current is not None and current.token == self.holder.token:
                    self.path.unlink()
        except OSError:
            pass  # the folder is gone or read-only: nothing of this run's is left to remove


def acquire(run_dir: str | Path, log=print, heartbeat_s: float = HEARTBEAT_S,
            stale_after_s: float = STALE_AFTER_S) -> RunLock:
    """Take RUN/run.lock for this process or raise RunLocked naming the live run that holds it."""
    path = Path(run_dir) / LOCK_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return take(path, log, heartbeat_s, stale_after_s)
    except OSError as error:
        raise RunLocked(f"cannot take the run lock {path}: {error}") from None


def take(path: Path, log, heartbeat_s: float, stale_after_s: float) -> RunLock:
    me = Holder(token=uuid.uuid4().hex, host=hostname(), pid_space=pid_space(), pid=os.getpid(),
                pid_start=process_start_time(os.getpid()), started=time.strftime("%Y-%m-%d %H:%M:%S %z"),
                command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    for _ in range(ATTEMPTS):
        if create(path, me):
            return RunLock(path, me, heartbeat_s)
        seen = read_lock(path)
        if seen is None:
            continue  # released meanwhile
        stale = stale_lock(path, seen, stale_after_s, log)
        if stale is not None and replace_if_unchanged(path, stale, me):
            holder = parse_holder(stale)
            log(f"note: took over {path} from a run that is gone: "
                f"{holder.describe() if holder else 'an unreadable lock file'}")
            return RunLock(path, me, heartbeat_s)
    raise RunLocked(f"could not take {path}: other runs keep taking it")


def stale_lock(path: Path, seen: bytes, stale_after_s: float, log) -> bytes | None:
    """`seen` when the lock holding it is stale; None when the lock changed to another one (look
    again). Raises RunLocked when its holder is alive."""
    holder = parse_holder(seen)
    if holder is not None and holder.pids_comparable():
        if pid_alive(holder.pid, holder.pid_start):
            raise_locked(path, holder)
        return seen
    # Another host, container or an unreadable file: alive while the file keeps changing, judged on
    # this process's own clock, so clocks that differ between hosts do not matter.
    what = holder.describe() if holder else "an unreadable lock file"
    log(f"note: {path} is held by {what}; waiting up to {stale_after_s:g} s for a heartbeat")
    deadline = time.monotonic() + stale_after_s
    while time.monotonic() < deadline:
        time.sleep(POLL_S)
        now = read_lock(path)
        if now != seen:
            current = parse_holder(now or b"")
            if holder is not None and current is not None and current.token == holder.token:
                raise_locked(path, current)
            return None
    return seen


def raise_locked(path: Path, holder: Holder) -> NoReturn:
    raise RunLocked(f"{path.parent} is in use by a live run: {holder.describe()}; stop that run or "
                    f"choose another --out (the lock is {path})")
