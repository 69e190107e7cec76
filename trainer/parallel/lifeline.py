"""Ranks die with their launcher.

torchrun and the deepspeed launcher stop their workers when they are stopped with a signal they can
catch, but a launcher killed with SIGKILL (an OOM kill, a scheduler's hard kill) leaves its workers
orphaned: they keep training and writing checkpoints into a folder that a restarted run is using.

`exit_with_launcher()` (called by every rank at start) ties the rank's life to its launcher: the
kernel kills the rank when its parent process dies (Linux PR_SET_PDEATHSIG), and a watcher thread
polls the launcher processes further up (the deepspeed runner above its per-node `launch`), exiting
the rank when one of them is gone. A process whose parent is not a launcher (one plain process, a
test) is left alone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from pathlib import Path

from trainer.runlock import pid_alive, process_start_time

PR_SET_PDEATHSIG = 1
LAUNCHER_MODULES = ("torch.distributed.run", "deepspeed.launcher.launch", "deepspeed.launcher.runner")
LAUNCHER_SCRIPTS = ("torchrun", "deepspeed")
POLL_S = 1.0


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def is_launcher(argv: list[str]) -> bool:
    return any(arg in LAUNCHER_MODULES or Path(arg).name in LAUNCHER_SCRIPTS for arg in argv[:4])


def launcher_chain(pid: int | None = None) -> list[tuple[int, int | None]]:
    """(pid, start time) of the launcher processes above this one: its parent and the launchers above that."""
    parent = _parent_of(pid or os.getpid())
    chain = []
    while parent and parent > 1 and is_launcher(_cmdline(parent)):
        chain.append((parent, process_start_time(parent)))
        parent = _parent_of(parent)
    return chain


def exit_with_launcher(log=lambda message: print(message, file=sys.stderr, flush=True)) -> bool:
    """Make this rank exit when its launcher dies. Returns False where there is no launcher to follow."""
    if not sys.platform.startswith("linux") or not is_launcher(_cmdline(os.getppid())):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    chain = launcher_chain()
    if not chain or not all(pid_alive(pid, start) for pid, start in chain):
        log(f"rank {os.environ.get('RANK', '?')}: the launcher is already gone; exiting")
        os._exit(1)

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(POLL_S):
            for pid, start in chain:
                if not pid_alive(pid, start):
                    log(f"rank {os.environ.get('RANK', '?')}: launcher process {pid} is gone; exiting")
                    os._exit(1)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()
    return True
