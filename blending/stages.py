"""A pipeline run's stage folders read back, without Spark, for lineage and inspection.

A stage folder (docs/contracts.md, "The stage folder") holds its kept rows in `part-*.parquet`, its stats
and a `_SUCCESS` record naming the stage; its dropped rows, each with its `drop_reason`, are in Parquet
files below it (`dropped/` with --keep-dropped, with every column; a slim index of doc_id, origin and
reason otherwise). Whatever columns a stage wrote are read back as they are, so the decisions of a
stage added later (its scores, clusters, cuts) show up here without a change. Rows are found with
pyarrow filters over the files (sorted doc_ids let whole row groups be skipped), never by loading a
folder. Imports neither pyspark nor dataprep (the folder protocol: stage_folder.py).
"""

from __future__ import annotations

import contextlib
import fnmatch
import heapq
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from blending.stage_folder import LISTING, SUCCESS, InputError, read_stats

REASON_COLUMNS = ("drop_reason", "reason")  # the full dropped rows', the slim index's
# Columns every document carries: what a stage decided is in the others.
DOCUMENT_COLUMNS = ("doc_id", "source", "url", "origin", "text")
BOOKKEEPING_COLUMNS = ("in_bytes", "in_rows")


@dataclass
class StageFolder:
    name: str  # the stage, as its _SUCCESS names it
    path: Path
    record: dict
    stats: dict | None
    upstream: list[str] = field(default_factory=list)  # stages whose folders it read

    def _files(self, pattern: str, below: bool) -> list[Path]:
        """Files of the folder matching `pattern` (in the folder itself, or in its subfolders): those its
        _SUCCESS lists (a listed folder copied from object storage as it is: stage_folder.py), else those
        that lie in it."""
        listing = self.record.get(LISTING)
        if not isinstance(listing, dict):
            return sorted(self.path.glob(f"*/**/{pattern}" if below else pattern))
        return [self.path / entry["path"] for name, entry in sorted(listing.items())
                if ("/" in name) == below and fnmatch.fnmatch(name.rsplit("/", 1)[-1], pattern)]

    @property
    def parts(self) -> list[Path]:
        return self._files("part-*.parquet", below=False)

    @cached_property
    def dropped_files(self) -> list[Path]:
        """Parquet files of the dropped rows: the full rows (--keep-dropped) when the stage kept them,
        else its slim index (doc_id, origin, reason)."""
        files = [p for p in self._files("*.parquet", below=True) if reason_column(p) is not None]
        full = [p for p in files if "text" in read_schema(p).names]
        return full or files

    @property
    def dropped_counts(self) -> dict[str, int]:
        return dict((self.stats or {}).get("dropped", {}))


@contextlib.contextmanager
def parquet_file(path: Path) -> Iterator[None]:
    """Around a read of a Parquet file of a folder the user gave: a corrupt one is an InputError naming it."""
    try:
        yield
    except pa.ArrowException as error:
        raise InputError(f"{path}: not a readable Parquet file ({' '.join(str(error).split())})") from None


def read_schema(path: Path) -> pa.Schema:
    with parquet_file(path):
        return pq.read_schema(path)


def reason_column(path: Path) -> str | None:
    names = read_schema(path).names
    return next((c for c in REASON_COLUMNS if c in names), None)


def find_stage_folders(out_dir: str | Path | Sequence[str | Path], max_depth: int = 3) -> list[StageFolder]:
    """Every finished stage folder under OUT_DIR (OUT_DIR itself included; or under each of several
    folders, e.g. a run's documents and its shards), upstream stages first."""
    folders: list[StageFolder] = []

    def visit(folder: Path, depth: int) -> None:
        success = folder / SUCCESS
        if success.is_file():
            try:
                record = json.loads(success.read_text())
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and "stage" in record:
                stats = read_stats(str(folder))
                folders.append(StageFolder(str(record["stage"]), folder, record, stats))
                return  # a stage's subfolders are its own (dropped rows, shards)
        if depth < max_depth:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and ".tmp-" not in p.name):
                visit(child, depth + 1)

    for root in [Path(out_dir)] if isinstance(out_dir, str | Path) else [Path(d) for d in out_dir]:
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such folder")
        visit(root, 0)
    return _in_pipeline_order(folders)


def _in_pipeline_order(folders: list[StageFolder]) -> list[StageFolder]:
    """Order by the inputs each _SUCCESS records: a stage comes after the stages whose folders it read
    (input records that name their stage, or input files inside another stage's folder)."""
    def folder_of(path: str) -> StageFolder | None:
        # recorded paths may be relative to wherever the job ran: match the folder by its trailing parts
        parent = Path(path).parent.parts
        return next((f for f in folders if parent and f.path.resolve().parts[-len(parent):] == parent), None)

    for folder in folders:
        ups = set()
        for item in folder.record.get("inputs") or []:
            if isinstance(item, dict) and "stage" in item:
                ups.add(str(item["stage"]))
            elif isinstance(item, dict) and "path" in item:
                parent = folder_of(str(item["path"]))
                if parent is not None:
                    ups.add(parent.name)
        folder.upstream = sorted(ups - {folder.name})
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset = frozenset()) -> int:
        if name not in depth:
            ups = [u for f in folders if f.name == name for u in f.upstream if u not in seen]
            depth[name] = 1 + max((depth_of(u, seen | {name}) for u in ups), default=-1)
        return depth[name]

    return sorted(folders, key=lambda f: (depth_of(f.name), f.name, str(f.path)))


# -- finding rows ----------------------------------------------------------------------------------------


def rows_where(files: Sequence[Path], column: str, values: Iterable, columns: Sequence[str] | None = None) -> pa.Table:
    """Rows of `files` whose `column` is one of `values`, with `columns` (default all) that exist."""
    values = list(values)
    tables = []
    for path in files:  # files of one folder may differ in columns (a stage's old and new dropped files)
        names = read_schema(path).names
        if column not in names:
            continue
        wanted = [c for c in (columns or names) if c in names]
        with parquet_file(path):
            table = ds.dataset(path, format="parquet").to_table(columns=wanted, filter=pc.field(column).isin(values))
        if table.num_rows:
            tables.append(table)
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def decisions(row: dict) -> dict:
    """What the stages recorded on a row: every column but the document's own and the bookkeeping;
    binary values (dedup's MinHash signature) as their size."""
    return {k: (f"<{len(v)} bytes>" if isinstance(v, bytes) else v) for k, v in row.items()
            if k not in DOCUMENT_COLUMNS + BOOKKEEPING_COLUMNS}


@dataclass
class StageVerdict:
    stage: str
    folder: str
    kept: bool
    reason: str | None
    row: dict  # the stage's columns on the row (scores, cluster, cuts, ...)

    def as_dict(self) -> dict:
        return {"stage": self.stage, "folder": self.folder, "kept": self.kept, "reason": self.reason,
                "decisions": self.row}


def _verdicts(folder: StageFolder, column: str, values: Sequence[str]) -> list[tuple[StageVerdict, dict]]:
    found = []
    for row in rows_where(folder.parts, column, values).to_pylist():
        found.append((StageVerdict(folder.name, str(folder.path), True, None, decisions(row)), row))
    if not found:
        for path in folder.dropped_files:
            reason = reason_column(path)
            for row in rows_where([path], column, values).to_pylist():
                kept = {k: v for k, v in decisions(row).items() if k not in REASON_COLUMNS}
                found.append((StageVerdict(folder.name, str(folder.path), False, row[reason], kept), row))
    return found


def document_history(folders: Sequence[StageFolder], doc_id: str | None = None,
                     origin: str | None = None) -> list[StageVerdict]:
    """Each stage's verdict on a document, upstream first, found by doc_id (following `parent_doc_id`
    back from pieces to their document) or by origin. A stage that never saw it has no verdict."""
    if (doc_id is None) == (origin is None):
        raise ValueError("give doc_id or origin")
    history: list[StageVerdict] = []
    if origin is not None:
        for folder in folders:
            history += [verdict for verdict, _ in _verdicts(folder, "origin", [origin])]
        return history
    ids = {doc_id}
    for folder in reversed(folders):
        found = _verdicts(folder, "doc_id", sorted(ids))
        ids |= {row["parent_doc_id"] for _, row in found if row.get("parent_doc_id")}
        history = [verdict for verdict, _ in found] + history
    return history


def representative(folder: StageFolder, doc_id: str) -> dict | None:
    """doc_id, origin and url of a kept row of the folder (a dedup cluster's representative)."""
    rows = rows_where(folder.parts, "doc_id", [doc_id], ["doc_id", "origin", "url"]).to_pylist()
    return rows[0] if rows else None


# -- samples and histograms ------------------------------------------------------------------------------


def sample_dropped(folder: StageFolder, reason: str, n: int, key=None) -> list[dict]:
    """n dropped rows of `reason`, the same ones on every call and machine: those whose doc_id hashes
    lowest (`key`, default sha1 of doc_id). Two passes over the dropped files: doc_ids of the reason
    (one column, filtered), then the chosen rows."""
    import hashlib

    key = key or (lambda d: hashlib.sha1(d.encode()).hexdigest())
    files = folder.dropped_files
    if not files:
        return []
    def doc_ids():
        for path in files:
            column = reason_column(path)
            with parquet_file(path):
                scanner = ds.dataset(path, format="parquet").scanner(columns=["doc_id"], filter=pc.field(column) == reason)
                for batch in scanner.to_batches():
                    yield from batch.column("doc_id").to_pylist()

    chosen = heapq.nsmallest(n, ((key(d), d) for d in doc_ids()))  # streams: holds n at a time
    rows: dict[str, dict] = {}
    for path in files:
        column = reason_column(path)
        for row in rows_where([path], "doc_id", [d for _, d in chosen]).to_pylist():
            row["reason"] = row.pop(column)
            rows[row["doc_id"]] = row
    return [rows[d] for _, d in chosen]


def score_columns(folder: StageFolder) -> list[str]:
    """Floating-point columns of the kept rows: the stage's scores (lang_score, quality_score, ...)."""
    parts = folder.parts
    if not parts:
        return []
    schema = read_schema(parts[0])
    return [f.name for f in schema if pa.types.is_floating(f.type)]


def column_batches(files: Sequence[Path], column: str, reason: str | None = None) -> Iterator[pa.Array]:
    """The values of one column, a batch at a time; only rows of `reason` when given (dropped files)."""
    for path in files:
        names = read_schema(path).names
        if column not in names:
            continue
        filter_ = None
        if reason is not None:
            filter_ = pc.field(reason_column(path)) == reason
        with parquet_file(path):
            for batch in ds.dataset(path, format="parquet").scanner(columns=[column], filter=filter_).to_batches():
                yield batch.column(column)
