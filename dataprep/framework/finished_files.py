"""Per-file resume of source stages: the rows of each finished input file, kept until the stage is done.

A source stage (extract, ingest) over thousands of WARC files that is killed after hours must not start
again from the first file. Each task stores the rows of the file it read (and the file's tally for
stats.json) in the folder `OUT.tmp-<key>`, the key a hash of the stage, code version and config hash; a
rerun with the same stage and config finds the folder and reads those rows back instead of the file.
The output is the same bytes: the stored rows are exactly those the file gave (Arrow IPC, the row
schema), and everything after (bucketing, sorting, stats) is computed as in an uninterrupted run.

    OUT.tmp-<key>/
      <file key>.arrow   the file's rows            file key: a hash of the input's path and size, so a
      <file key>.json    its path and tally,      file that changed is read again
                         written last
      _lock              held by the running driver (local and network filesystems), so two runs never
                         share the folder; a killed run's lock goes with its process
      output/            the stage folder being written, renamed to OUT when complete

Each file is written under a temporary name and renamed, the tally last: a file counts as finished
only when both are complete. The folder is kept when a run fails and removed once the stage's output
folder is in place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc

from blending.stage_folder import resolve
from dataprep.framework.tally import Tally

LOCK = "_lock"


class FolderInUseError(RuntimeError):
    """Another run of the same stage and config is writing the same output."""


def _file_key(path: str, size: int | None) -> str:
    return hashlib.sha1(f"{path}\0{size}".encode()).hexdigest()[:20]


class FinishedFiles:
    """The store of one stage output (driver side: lock, listing, removal; task side: load, save).
    Picklable: tasks get it with their function."""

    def __init__(self, output: str, key_parts: list, inputs: list[dict]):
        key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
        self.uri = f"{output.rstrip('/')}.tmp-{key}"
        self.keys = {d["path"]: _file_key(d["path"], d.get("size")) for d in inputs}
        self.output_uri = f"{self.uri}/output"  # where the stage folder is assembled before its rename

    # -- driver -------------------------------------------------------------------------------------------

    def finished(self) -> set[str]:
        """The inputs whose rows are stored."""
        fs, root = resolve(self.uri)
        if fs.get_file_info(root).type == pafs.FileType.NotFound:
            return set()
        names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(root))}
        return {path for path, key in self.keys.items() if f"{key}.json" in names}

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder for this run; refuse when another live run holds it."""
        fs, root = resolve(self.uri)
        fs.create_dir(root, recursive=True)
        if "://" in self.uri and not self.uri.startswith("file://"):
            yield  # object stores have no locks: one run per output is the user's to ensure
            return
        with open(os.path.join(root, LOCK), "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderInUseError(f"{self.uri} is in use by another run of this stage; wait for it to end, "
                                       "or stop it") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def remove(self) -> None:
        fs, root = resolve(self.uri)
        if fs.get_file_info(root).type != pafs.FileType.NotFound:
            fs.delete_dir(root)

    # -- tasks ----------------------------------------------------------------------------------------------

    def load(self, path: str):
        """(the stored batches, the stored tally) of a finished file, or None."""
        fs, root = resolve(self.uri)
        key = self.keys[path]
        if fs.get_file_info(f"{root}/{key}.json").type == pafs.FileType.NotFound:
            return None
        with fs.open_input_stream(f"{root}/{key}.json") as f:
            tally = Tally.from_dict(json.loads(f.read())["tally"])
        with fs.open_input_file(f"{root}/{key}.arrow") as f:
            reader = ipc.open_file(f)
            batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        return batches, tally

    def writer(self, path: str, schema: pa.Schema) -> _FileRows:
        return _FileRows(self.uri, path, self.keys[path], schema)


class _FileRows:
    """One file's rows as they are produced, then its tally; renamed into place when complete."""

    def __init__(self, uri: str, path: str, key: str, schema: pa.Schema):
        self.fs, self.root = resolve(uri)
        self.path, self.key = path, key
        self.tmp = f"{self.root}/{key}.{uuid.uuid4().hex[:8]}.tmp"
        self.stream = self.fs.open_output_stream(self.tmp)
        self.sink = ipc.new_file(self.stream, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self.sink.write_batch(batch)

    def commit(self, tally: Tally) -> None:
        self.sink.close()
        self.stream.close()
        self.fs.move(self.tmp, f"{self.root}/{self.key}.arrow")
        tmp = f"{self.root}/{self.key}.json.{uuid.uuid4().hex[:8]}.tmp"
        with self.fs.open_output_stream(tmp) as f:
            f.write(json.dumps({"path": self.path, "tally": tally.to_dict()}).encode())
        self.fs.move(tmp, f"{self.root}/{self.key}.json")
