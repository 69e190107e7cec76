"""manifest.json: what the data service hands the trainer (docs/contracts.md, "The manifest").

    {"format_version": 1,
     "tokenizer": {"file": "tokenizer.json", "sha256": ..., "vocab_size": ..., "eod_id": ...},
     "sources": {NAME: {"weight": w,
                        "train": [{"prefix": "NAME/train_00000", "documents": d, "tokens": t,
                                   "bin": {"bytes": b, "sha256": h}, "idx": {"bytes": b, "sha256": h},
                                   "docs": {"bytes": b, "sha256": h}}, ...],
                        "valid": [...]}},
     "blend_per_split": [[[prefix, ...], [weight, ...]], [[...], [...]], null]}

Paths are relative to the manifest's folder. `docs` is the shard's document index, PREFIX.docs.parquet
(blending/docindex.py: doc_id, origin, url of each document in order); shards written by other tools
may lack it, and lineage then stops at the shard and document number. `blend_per_split` is megatron's BlendedMegatronDatasetConfig
field (train, valid, test): every shard of every source with the source's weight spread over its shards
by tokens. Source weights sum to 1. This module imports neither pyspark nor dataprep.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blending.blend import shard_weights
from blending.docindex import DOCS_SUFFIX, document_count
from blending.hashing import sha256_file
from blending.indexed import IndexFormatError, read_index_header, read_index_summary
from blending.tokenizer import load_tokenizer, token_dtype, vocab_size

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SPLITS = ("train", "valid")
_WEIGHT_TOLERANCE = 1e-9


class ManifestError(ValueError):
    """The manifest or a file it lists is missing, malformed or does not match; the message names it."""


@dataclass(frozen=True)
class Shard:
    prefix: str  # absolute path prefix: PREFIX.bin, PREFIX.idx
    relative_prefix: str
    documents: int
    tokens: int
    bin_bytes: int
    bin_sha256: str
    idx_bytes: int
    idx_sha256: str
    docs_bytes: int | None = None  # the document index, when the manifest lists one
    docs_sha256: str | None = None

    @property
    def bin_path(self) -> str:
        return self.prefix + ".bin"

    @property
    def docs_path(self) -> str | None:
        return None if self.docs_sha256 is None else self.prefix + DOCS_SUFFIX

    @property
    def idx_path(self) -> str:
        return self.prefix + ".idx"


@dataclass(frozen=True)
class Source:
    name: str
    weight: float
    train: tuple[Shard, ...]
    valid: tuple[Shard, ...]

    def shards(self, split: str) -> tuple[Shard, ...]:
        return getattr(self, split)

    def tokens(self, split: str) -> int:
        return sum(s.tokens for s in self.shards(split))

    def documents(self, split: str) -> int:
        return sum(s.documents for s in self.shards(split))


@dataclass(frozen=True)
class Manifest:
    path: Path  # the manifest file
    format_version: int
    tokenizer_path: Path
    tokenizer_sha256: str
    vocab_size: int
    eod_id: int
    sources: dict[str, Source]
    # megatron's blend_per_split, absolute prefixes: [(prefixes, weights) | None for train, valid, test]
    blend_per_split: list[tuple[list[str], list[float]] | None]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def token_dtype(self) -> np.dtype:
        return token_dtype(self.vocab_size)

    def load_tokenizer(self):
        """The HF tokenizer the shards were made with (a `tokenizers.Tokenizer`)."""
        return load_tokenizer(self.tokenizer_path)

    def shards(self, split: str) -> list[tuple[str, Shard]]:
        return [(name, shard) for name, source in self.sources.items() for shard in source.shards(split)]

    def tokens(self, split: str) -> int:
        return sum(source.tokens(split) for source in self.sources.values())


def manifest_dict(tokenizer: dict, sources: dict[str, dict]) -> dict:
    """The manifest's JSON object from the tokenizer entry and, per source, its weight and shard entries.

    `blend_per_split` is derived here, so it always agrees with the shard lists.
    """
    blend = []
    for split in SPLITS:
        prefixes, weights = [], []
        for entry in sources.values():
            shards = entry[split]
            if shards:
                prefixes += [s["prefix"] for s in shards]
                weights += shard_weights(entry["weight"], [s["tokens"] for s in shards])
        blend.append([prefixes, weights] if prefixes else None)
    blend.append(None)  # test: the paper has no test split; downstream tasks are evaluated separately
    return {"format_version": FORMAT_VERSION, "tokenizer": tokenizer, "sources": sources, "blend_per_split": blend}


def write_manifest(folder: str | Path, manifest: dict) -> Path:
    path = Path(folder) / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path


def load_manifest(path: str | Path, verify_hashes: bool = False) -> Manifest:
    """Read a manifest and check that every file it lists exists with its size and a valid header.

    With `verify_hashes`, also check every sha256, the token and document counts inside every `.idx`,
    and the tokenizer's vocabulary size and end-of-document id. Raises ManifestError naming the first
    problem.
    """
    path = Path(path).resolve()
    if path.is_dir():
        path = path / MANIFEST_FILE
    manifest = _parse(path)
    _check_file(manifest.tokenizer_path, None, manifest.tokenizer_sha256 if verify_hashes else None)
    if verify_hashes:
        tokenizer = manifest.load_tokenizer()
        if vocab_size(tokenizer) != manifest.vocab_size:
            raise ManifestError(f"{manifest.tokenizer_path}: vocabulary size {vocab_size(tokenizer)}, manifest says {manifest.vocab_size}")
        if tokenizer.id_to_token(manifest.eod_id) is None:
            raise ManifestError(f"{manifest.tokenizer_path}: no token with the end-of-document id {manifest.eod_id}")
    for _, shard in manifest.shards("train") + manifest.shards("valid"):
        _check_shard(shard, manifest.token_dtype, verify_hashes)
    return manifest


def _parse(path: Path) -> Manifest:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ManifestError(f"{path}: no such manifest") from error
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path}: not JSON ({error})") from error
    root = path.parent
    try:
        if raw["format_version"] != FORMAT_VERSION:
            raise ManifestError(f"format_version {raw['format_version']}, this reader reads {FORMAT_VERSION}")
        tok = raw["tokenizer"]
        sources = {}
        for name, entry in raw["sources"].items():
            shards = {split: tuple(_shard(root, s) for s in entry[split]) for split in SPLITS}
            sources[name] = Source(name, float(entry["weight"]), shards["train"], shards["valid"])
        blend = [None if b is None else ([str(root / p) for p in b[0]], [float(w) for w in b[1]])
                 for b in raw["blend_per_split"]]
        tokenizer = root / _inside(root, tok["file"], "tokenizer file")
        manifest = Manifest(path, int(raw["format_version"]), tokenizer, str(tok["sha256"]),
                            int(tok["vocab_size"]), int(tok["eod_id"]), sources, blend)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        if isinstance(error, ManifestError):
            raise ManifestError(f"{path}: {error}") from None
        raise ManifestError(f"{path}: malformed manifest ({type(error).__name__}: {error})") from error
    _check_blend(manifest, raw)
    return manifest


def _inside(root: Path, relative: str, what: str) -> str:
    """A path the manifest lists, kept inside its folder: relative, no '..', not through a link out."""
    relative = str(relative)
    escapes = os.path.isabs(relative) or ".." in Path(relative).parts
    if escapes or not (root / relative).resolve().is_relative_to(root.resolve()):
        raise ManifestError(f"{what} {relative!r} must be a path inside the manifest's folder")
    return relative


def _shard(root: Path, entry: dict) -> Shard:
    prefix = _inside(root, entry["prefix"], "shard prefix")
    docs = entry.get("docs")
    return Shard(str(root / prefix), prefix, int(entry["documents"]), int(entry["tokens"]),
                 int(entry["bin"]["bytes"]), str(entry["bin"]["sha256"]),
                 int(entry["idx"]["bytes"]), str(entry["idx"]["sha256"]),
                 None if docs is None else int(docs["bytes"]), None if docs is None else str(docs["sha256"]))


def _check_blend(manifest: Manifest, raw: dict) -> None:
    if not manifest.sources:
        raise ManifestError(f"{manifest.path}: no sources")
    total = sum(s.weight for s in manifest.sources.values())
    if abs(total - 1.0) > 1e-6:
        raise ManifestError(f"{manifest.path}: source weights sum to {total}, not 1")
    expected = manifest_dict(raw["tokenizer"], raw["sources"])["blend_per_split"]
    if len(raw["blend_per_split"]) != 3:
        raise ManifestError(f"{manifest.path}: blend_per_split needs 3 entries (train, valid, test)")
    for split, want, got in zip(("train", "valid", "test"), expected, raw["blend_per_split"], strict=True):
        if (want is None) != (got is None) or (want is not None and (
                want[0] != got[0] or len(want[1]) != len(got[1])
                or any(abs(a - b) > _WEIGHT_TOLERANCE for a, b in zip(want[1], got[1], strict=True)))):
            raise ManifestError(f"{manifest.path}: blend_per_split[{split}] does not match the sources' shards and weights")


def _check_file(path: Path | str, size: int | None, sha256: str | None) -> None:
    if not os.path.isfile(path):
        raise ManifestError(f"{path}: missing")
    actual = os.path.getsize(path)
    if size is not None and actual != size:
        raise ManifestError(f"{path}: {actual} bytes, manifest says {size}")
    if sha256 is not None and sha256_file(path) != sha256:
        raise ManifestError(f"{path}: sha256 differs from the manifest")


def _check_shard(shard: Shard, dtype: np.dtype, verify_hashes: bool) -> None:
    _check_file(shard.idx_path, shard.idx_bytes, shard.idx_sha256 if verify_hashes else None)
    _check_file(shard.bin_path, shard.bin_bytes, shard.bin_sha256 if verify_hashes else None)
    try:
        summary = read_index_summary(shard.idx_path) if verify_hashes else read_index_header(shard.idx_path)
    except IndexFormatError as error:
        raise ManifestError(str(error)) from error
    if summary.dtype != dtype:
        raise ManifestError(f"{shard.idx_path}: tokens are {summary.dtype}, a vocabulary of this size needs {dtype}")
    if summary.documents != shard.documents:
        raise ManifestError(f"{shard.idx_path}: {summary.documents} documents, manifest says {shard.documents}")
    if verify_hashes and summary.tokens != shard.tokens:
        raise ManifestError(f"{shard.idx_path}: {summary.tokens} tokens, manifest says {shard.tokens}")
    if shard.bin_bytes != shard.tokens * dtype.itemsize:
        raise ManifestError(f"{shard.bin_path}: {shard.bin_bytes} bytes cannot hold {shard.tokens} {dtype} tokens")
    if verify_hashes and shard.docs_path is not None:
        # only `verify` looks at it: the trainer needs no lineage to train
        _check_file(shard.docs_path, shard.docs_bytes, shard.docs_sha256)
        try:
            rows = document_count(shard.prefix)
        except Exception as error:  # pyarrow raises several types for an unreadable file
            raise ManifestError(f"{shard.docs_path}: not a readable document index ({error})") from error
        if rows != shard.documents:
            raise ManifestError(f"{shard.docs_path}: {rows} documents, manifest says {shard.documents}")
