"""python -m blending locate: which documents a training sample is made of, and where each came from.

A sample of the blended stream is looked up the way megatron-core reads it (blending.reader.sample_pieces);
a document by shard and number, by doc_id or by origin through the shards' document indexes
(blending/docindex.py). Each document is reported with its source, shard, document number, token range,
doc_id, URL, origin (WARC file@offset, or input file:row) and text, decoded from the shard's tokens.
With the pipeline run's folder (`--stages OUT_DIR`), also every stage's decision on it, read from the
stage folders (blending/stages.py): language and score, quality score and Pareto draw, dedup cluster and
representative, decontamination cuts, whatever columns the stages wrote. An origin that never reached
the shards is traced the same way to the stage that dropped it and its reason.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from blending.docindex import find_documents, read_document_index
from blending.hashing import sha256_file
from blending.indexed import read_document
from blending.manifest import SPLITS, Manifest, Shard, load_manifest
from blending.terminal import printable, printable_json

# The trainer's defaults (trainer/config.py: the paper's sequence length, the run seed); a test keeps them equal.
DEFAULT_SEQ_LENGTH = 2048
DEFAULT_SEED = 1234


class LocateError(ValueError):
    """The question cannot be answered as asked (no such sample, shard or run); the message says why."""


@dataclass(frozen=True)
class ShardRef:
    source: str
    split: str
    shard: Shard


def shards_by_prefix(manifest: Manifest) -> dict[str, ShardRef]:
    """Every shard of the manifest under its absolute prefix (and its relative one)."""
    refs = {}
    for split in SPLITS:
        for name, shard in manifest.shards(split):
            ref = ShardRef(name, split, shard)
            refs[shard.prefix] = refs[shard.relative_prefix] = ref
    return refs


class Describer:
    """A shard document as a dict: source, shard, doc, doc_id, origin, url, tokens, token_range, and
    (`with_text`) its text."""

    def __init__(self, manifest: Manifest, with_text: bool = True) -> None:
        self.manifest = manifest
        self.with_text = with_text
        self.refs = shards_by_prefix(manifest)
        self._tokenizer = None
        self._indexes: dict[str, pa.Table] = {}

    def _lineage(self, shard: Shard, doc: int) -> dict:
        if shard.docs_path is None:
            return {"doc_id": None, "origin": None, "url": None}
        if shard.prefix not in self._indexes:
            self._indexes[shard.prefix] = read_document_index(shard.prefix)
        return self._indexes[shard.prefix].slice(doc, 1).to_pylist()[0]

    def __call__(self, prefix: str, doc: int, token_range: tuple[int, int] | None = None) -> dict:
        ref = self.refs.get(prefix)
        if ref is None:
            raise LocateError(f"{prefix}: no such shard in {self.manifest.path}")
        if not 0 <= doc < ref.shard.documents:
            raise LocateError(f"{ref.shard.relative_prefix} has {ref.shard.documents} documents; no document {doc}")
        tokens = read_document(ref.shard.prefix, doc).tolist()
        described = {**self._lineage(ref.shard, doc), "source": ref.source, "split": ref.split,
                     "shard": ref.shard.relative_prefix, "doc": doc, "tokens": len(tokens),
                     "token_range": list(token_range) if token_range else [0, len(tokens)]}
        if self.with_text:
            if self._tokenizer is None:
                self._tokenizer = self.manifest.load_tokenizer()
            body = tokens[:-1] if tokens and tokens[-1] == self.manifest.eod_id else tokens
            described["text"] = self._tokenizer.decode(body, skip_special_tokens=False)
        return described


def locate_samples(manifest: Manifest, dataset, indices, describe: Describer | None = None) -> list[dict]:
    """{"sample": i, "documents": [...]} for each sample index of a dataset built from `manifest`."""
    from blending.reader import sample_pieces

    describe = describe or Describer(manifest)
    outside = [i for i in indices if not 0 <= i < len(dataset)]
    if outside:
        raise LocateError(f"sample {outside[0]} is outside the stream's {len(dataset)} samples")
    return [{"sample": i, "documents": [describe(prefix, doc, (start, end))
                                        for prefix, doc, start, end in sample_pieces(dataset, i)]}
            for i in indices]


def find(manifest: Manifest, column: str, value: str) -> list[tuple[str, int]]:
    """(shard prefix, document) of every document whose `column` of the document index equals `value`."""
    return [(shard.prefix, doc) for split in SPLITS for _, shard in manifest.shards(split)
            if shard.docs_path is not None for doc in find_documents(shard.prefix, column, value)]


def stream_for(args, manifest: Manifest, needed: int):
    """The DataStream to read: the run's (--run), or one of the trainer's defaults or the given values."""
    from blending.reader import DataStream

    if args.run_dir:
        stream = DataStream.load(args.run_dir)
        if stream.manifest_sha256 and stream.manifest_sha256 != sha256_file(manifest.path):
            raise LocateError(f"run {args.run_dir} trained on another manifest ({stream.manifest}), not {manifest.path}")
        return stream, Path(args.run_dir) / "index-cache"
    samples = args.samples or needed
    return DataStream(args.seq_len, args.seed, samples if args.split == "train" else 1,
                      samples if args.split == "valid" else 1), None


def stage_history(folders, doc_id: str | None = None, origin: str | None = None) -> list[dict]:
    """Each stage's verdict on a document (kept, or the drop reason) with the columns it wrote; a dedup
    drop also names its representative's doc_id, origin and url."""
    from blending.stages import document_history, representative

    history = []
    for verdict in document_history(folders, doc_id=doc_id, origin=origin):
        entry = verdict.as_dict()
        duplicate_of = verdict.row.get("duplicate_of")
        if duplicate_of:
            folder = next(f for f in folders if str(f.path) == verdict.folder)
            entry["representative"] = representative(folder, duplicate_of) or {"doc_id": duplicate_of}
        history.append(entry)
    return history


def record_of(origin: str, warc: str | None, folders) -> dict | None:
    """The WARC record behind an origin, re-read from its file: in `warc` (a folder, s3:// prefix or
    https:// base, or the file), else where the extract stage read it (its _SUCCESS lists its inputs).
    None for an origin that is not FILE@OFFSET or whose file is nowhere known."""
    from blending.warc_record import parse_warc_origin, read_record, warc_location

    parsed = parse_warc_origin(origin)
    if parsed is None:
        return None
    if warc:
        location = warc_location(warc, parsed.name)
    else:
        read = [item["path"] for f in folders for item in f.record.get("inputs") or []
                if str(item.get("path", "")).rstrip("/").rsplit("/", 1)[-1] == parsed.name]
        if not read:
            return None
        location = read[0]
    try:
        return read_record(location, origin).as_dict()
    except (OSError, ValueError) as e:
        raise LocateError(f"the record {origin} cannot be read from {location}: {e}") from e


def run(args) -> dict:
    """The answer to the command line's question as one JSON-ready object."""
    answer = _documents(args)
    folders = []
    if getattr(args, "stages", None):
        from blending.stages import find_stage_folders

        folders = find_stage_folders(args.stages)
        for document in answer["documents"]:
            if document["doc_id"] is not None:
                document["stages"] = stage_history(folders, doc_id=document["doc_id"])
        if answer.get("query") and not answer["documents"]:
            (column, value), = answer["query"].items()
            history = stage_history(folders, **{column: value})
            dropped = next((h for h in history if not h["kept"]), None)
            answer["stages"] = history
            answer["dropped_at"] = {"stage": dropped["stage"], "reason": dropped["reason"]} if dropped else None
    if args.origin and (args.page or args.warc):
        answer["record"] = record_of(args.origin, args.warc, folders)
    return answer


def _documents(args) -> dict:
    if args.manifest is None:
        if args.origin is None or not (args.page or args.warc):
            raise LocateError("a manifest is needed, except for --origin with --page or --warc")
        return {"sample": None, "query": {"origin": args.origin}, "documents": [], "shards_searched": False}
    manifest = load_manifest(args.manifest)
    describe = Describer(manifest)
    if args.sample is not None:
        stream, cache = stream_for(args, manifest, args.sample + 1)
        with tempfile.TemporaryDirectory(prefix="locate-index-") as scratch:
            train, valid = stream.datasets(manifest, cache_dir=cache or scratch)
            dataset = train if args.split == "train" else valid
            located = locate_samples(manifest, dataset, [args.sample], describe)[0]
        return {**located, "split": args.split,
                "stream": {"seq_length": stream.seq_length, "seed": stream.seed, "samples": len(dataset),
                           "run": str(args.run_dir) if args.run_dir else None}}
    if args.shard is not None:
        if args.doc is None:
            raise LocateError("--shard needs --doc")
        prefix = args.shard.removesuffix(".bin").removesuffix(".idx")
        return {"sample": None, "documents": [describe(prefix, args.doc)]}
    column, value = ("doc_id", args.doc_id) if args.doc_id is not None else ("origin", args.origin)
    return {"sample": None, "query": {column: value},
            "documents": [describe(prefix, doc) for prefix, doc in find(manifest, column, value)]}


def format_text(answer: dict, lines: int = 3) -> str:
    out = []
    if answer.get("sample") is not None:
        stream = answer["stream"]
        origin = f"run {stream['run']}" if stream["run"] else f"a stream of {stream['samples']:,} samples"
        out.append(f"sample {answer['sample']} of {answer['split']} (seq {stream['seq_length']}, seed "
                   f"{stream['seed']}, {origin}): {len(answer['documents'])} document(s)")
    elif "query" in answer:
        (column, value), = answer["query"].items()
        found = len(answer["documents"])
        if answer.get("shards_searched", True):
            out.append(f"{column} {value}: " + (f"{found} document(s) in the shards" if found else "not in the shards"))
        if "stages" in answer:
            out += _format_history(answer["stages"], "    ")
            if answer["dropped_at"]:
                out.append(f"  dropped by {answer['dropped_at']['stage']}: {answer['dropped_at']['reason']}")
            elif answer["stages"]:
                out.append("  kept by every stage found; blending left it out (see the shards' stats.json) "
                           "or the shards were built from other folders")
            else:
                out.append("  no stage folder holds it (not a record any stage read?)")
    for d in answer["documents"]:
        start, end = d["token_range"]
        out.append(f"  {d['source']}  {d['shard']} doc {d['doc']}  tokens {start}-{end} of {d['tokens']}")
        out.append(f"    doc_id {d['doc_id']}  origin {d['origin']}  url {d['url']}")
        if "stages" in d:
            out += _format_history(d["stages"], "    ")
        shown = [line.strip() for line in d["text"].splitlines() if line.strip()][:lines]
        out += [f"    | {line[:160]}" for line in shown]
    if "record" in answer:
        out += _format_record(answer["record"])
    return printable("\n".join(out))


PAGE_CHARS = 4000  # of a record's page, printed


def _format_record(record: dict | None) -> list[str]:
    if record is None:
        return ["  record: its WARC file is not known (give --warc, or --stages with the extract stage's folder)"]
    what = "  ".join(str(v) for v in (record["warc_type"], record["http_status"], record["content_type"]) if v)
    out = [f"  record {record['origin']} read from {record['location']}: {what}",
           f"    url {record['target_uri']}  {record['payload_bytes']:,} bytes of payload"]
    page = record["page"][:PAGE_CHARS]
    out += [f"    | {line}" for line in page.splitlines() if line.strip()]
    if record["payload_bytes"] > len(page):
        out.append("    | ...")
    return out


def _format_history(history: list[dict], indent: str) -> list[str]:
    lines, before = [], {}
    for h in history:
        # a keeping stage's own decisions: the columns it added or changed (later stages carry earlier
        # ones along); a dropping stage's row in full, the scores its reason rests on
        shown = "  ".join(f"{k}={round(v, 4) if isinstance(v, float) else v}" for k, v in h["decisions"].items()
                          if v is not None and (not h["kept"] or before.get(k) != v))
        before = h["decisions"]
        verdict = "kept" if h["kept"] else f"DROPPED {h['reason']}"
        lines.append(f"{indent}{h['stage']:<14} {verdict:<24} {shown}".rstrip())
        if "representative" in h:
            r = h["representative"]
            lines.append(f"{indent}{'':<14} representative {r.get('doc_id')}  origin {r.get('origin')}  url {r.get('url')}")
    return lines


def main(args) -> int:
    """`python -m blending locate`; its bad input is reported by blending/__main__.py's main."""
    answer = run(args)
    print(printable_json(json.dumps(answer, ensure_ascii=False)) if args.json else format_text(answer, args.lines))
    found = answer["documents"] if answer.get("shards_searched", True) else answer.get("record")
    return 0 if found else 1
