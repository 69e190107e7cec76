"""Wall time a rank spends blocked in communication, for the compute/communication split of benchmarks.

While active, `CommTimer` times every torch.distributed collective and point-to-point call (megatron-core's
tensor-parallel all-reduces, DeepSpeed's pipeline sends/receives, ZeRO's gradient reduction and parameter
all-gather, the tied-embedding all-reduce), including the `wait()` of asynchronous ones. Time blocked in a
receive includes waiting for the peer, so pipeline bubbles count as communication.
"""

from __future__ import annotations

import time

import torch.distributed as dist

TIMED = ("all_reduce", "broadcast", "send", "recv", "isend", "irecv", "all_gather", "all_gather_into_tensor",
         "reduce_scatter", "reduce_scatter_tensor", "reduce", "barrier", "all_to_all_single", "gather", "scatter",
         "all_reduce_coalesced", "batch_isend_irecv")


class _TimedWork:
    """An asynchronous handle whose wait() is counted."""

    def __init__(self, work, timer: CommTimer):
        self._work = work
        self._timer = timer

    def wait(self, *args, **kwargs):
        return self._timer._timed(self._work.wait, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._work, name)


class CommTimer:
    def __init__(self):
        self.seconds = 0.0
        self.calls = 0
        self._depth = 0
        self._restore: list[tuple[object, str, object]] = []

    def _timed(self, fn, *args, **kwargs):
        if self._depth:  # a collective implemented with another one: count the outer call only
            return fn(*args, **kwargs)
        self._depth += 1
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self._depth -= 1
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def _wrap(self, fn):
        def timed(*args, **kwargs):
            result = self._timed(fn, *args, **kwargs)
            if result is not None and hasattr(result, "wait") and not isinstance(result, list):
                return _TimedWork(result, self)
            return result

        return timed

    def _patch(self, owner, name: str) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return
        self._restore.append((owner, name, original))
        setattr(owner, name, self._wrap(original))

    def __enter__(self) -> CommTimer:
        for name in TIMED:
            self._patch(dist, name)
        backend = _deepspeed_backend()
        if backend is not None:  # DeepSpeed keeps these two functions from before any patching
            self._patch(backend, "all_gather_function")
            self._patch(backend, "reduce_scatter_function")
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)
        self._restore.clear()


def _deepspeed_backend():
    from deepspeed import comm

    return getattr(comm.comm, "cdb", None)
