"""Helpers more than one test module uses (test modules import from here, never from each other).

    pipeline_run_config, PIPELINE_OPTIONS  what conftest's shared pipeline run is run with
    launch_env                              the environment of a training launch (torch.distributed.run)
    prose_documents, build_prose_shards     Megatron shards + manifest from two real texts, without Spark
    paragraphs, document_rows,              curated documents from fixture texts, and a folder of them
      write_stage_folder                    as the pipeline's last stage writes it
    DDL, REASONS, contract_rows             rows with a deterministic drop pattern, for stage outputs
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from blending.docindex import write_document_index
from blending.indexed import IndexedDatasetWriter
from blending.manifest import manifest_dict, write_manifest
from blending.stage_folder import FINAL_STAGE
from blending.tokenizer import EOD_TOKEN, encode_documents, eod_id, token_dtype, train_bpe, vocab_size
from dataprep.schema import DOCUMENT_SCHEMA, bucket_of, doc_id

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"

# -- the shared pipeline run (conftest.py's pipeline_run) -----------------------------------------------------
# A stage added to the pipeline runs in it by itself; one that needs settings (a model file, task files)
# adds them here.
PIPELINE_OPTIONS: dict = {}


def pipeline_run_config():
    from dataprep.config import DataprepConfig

    config = DataprepConfig()
    config.output.num_buckets = 4
    return config


# -- training launches -------------------------------------------------------------------------------------


def launch_env() -> dict:
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               TORCH_EXTENSIONS_DIR=str(ROOT / ".cache" / "torch_extensions"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


# -- shards from real prose --------------------------------------------------------------------------------
PROSE = FIXTURES / "prose"
TEXTS = {"shakespeare": "tinyshakespeare_head.txt", "frankenstein": "frankenstein_head.txt"}


def prose_documents(name: str) -> list[str]:
    """Paragraphs of a real text as documents (speeches for Shakespeare)."""
    text = (PROSE / TEXTS[name]).read_text(encoding="utf-8").replace("\r\n", "\n")
    return [p.strip() for p in text.split("\n\n") if len(p.strip()) > 40]


def build_prose_shards(out: Path, vocab: int = 512, weights: dict[str, float] | None = None) -> Path:
    """Two sources (Shakespeare, Frankenstein), every 10th document to the validation split, a
    byte-level BPE trained on the training documents, Megatron shards, their document indexes (origin:
    file:paragraph) and manifest written with blending's writers. Returns the manifest path."""
    weights = weights or {"shakespeare": 0.7, "frankenstein": 0.3}
    out.mkdir(parents=True, exist_ok=True)
    docs = {name: prose_documents(name) for name in weights}
    numbered = {name: list(enumerate(ds)) for name, ds in docs.items()}
    splits = {name: {"train": [d for d in ds if d[0] % 10], "valid": ds[::10]} for name, ds in numbered.items()}
    tokenizer = train_bpe((d for name in weights for _, d in splits[name]["train"]), vocab_size=vocab)
    tokenizer.save(str(out / "tokenizer.json"))
    eod, dtype = eod_id(tokenizer, EOD_TOKEN), token_dtype(vocab_size(tokenizer))
    sources = {}
    for name, weight in weights.items():
        entry = {"weight": weight}
        for split, rows in splits[name].items():
            prefix = f"{name}/{split}_00000"
            (out / name).mkdir(exist_ok=True)
            writer = IndexedDatasetWriter(out / prefix, dtype)
            writer.add_documents(*encode_documents(tokenizer, [text for _, text in rows], eod, dtype))
            shard = writer.close()
            origins = [f"{TEXTS[name]}:{i}" for i, _ in rows]
            docs_file = write_document_index(out / prefix, [doc_id(name, o) for o in origins], origins, [None] * len(rows))
            entry[split] = [{"prefix": prefix, "documents": shard.documents, "tokens": shard.tokens,
                             "bin": {"bytes": shard.bin.bytes, "sha256": shard.bin.sha256},
                             "idx": {"bytes": shard.idx.bytes, "sha256": shard.idx.sha256},
                             "docs": {"bytes": docs_file.bytes, "sha256": docs_file.sha256}}]
        sources[name] = entry
    tok_entry = {"file": "tokenizer.json", "sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest(),
                 "vocab_size": vocab_size(tokenizer), "eod_id": eod}
    return write_manifest(out, manifest_dict(tok_entry, sources))


# -- curated documents for blending ---------------------------------------------------------------------
BLENDING_FIXTURES = FIXTURES / "blending"


def paragraphs(name: str) -> list[str]:
    """Documents of a fixture text: wikitext paragraphs (headings left out), or blank-line separated blocks."""
    text = (BLENDING_FIXTURES / name).read_bytes().decode("utf-8-sig").replace("\r\n", "\n")
    if name.startswith("wikitext"):
        lines = (line.strip() for line in text.split("\n"))
        return [line for line in lines if line and not re.fullmatch(r"(= )+.*( =)+", line)]
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def document_rows(source: str, fixture: str, texts: list) -> list[dict]:
    return [{"doc_id": doc_id(source, f"{fixture}:{i}"), "source": source, "url": None, "origin": f"{fixture}:{i}",
             "lang": "en", "lang_score": 1.0, "text": t} for i, t in enumerate(texts)]


def write_stage_folder(folder: Path, rows: list[dict], buckets: int = 3) -> None:
    """A folder of curated documents as the pipeline's last stage writes it (docs/contracts.md): bucketed
    part files sorted by doc_id, stats, _SUCCESS."""
    folder.mkdir(parents=True)
    for b in range(buckets):
        part = sorted((r for r in rows if bucket_of(r["doc_id"], buckets) == b), key=lambda r: r["doc_id"])
        pq.write_table(pa.Table.from_pylist(part, schema=DOCUMENT_SCHEMA), folder / f"part-{b:05d}.parquet")
    (folder / "stats.json").write_text(json.dumps({"stage": FINAL_STAGE, "in": {"rows": len(rows)}}))
    (folder / "_SUCCESS").write_text(json.dumps({"stage": FINAL_STAGE}))


# -- stage output rows (docs/contracts.md) --------------------------------------------------------------
DDL = (
    "doc_id string, source string, url string, origin string, lang string, lang_score double, "
    "text string, in_bytes long, drop_reason string"
)
REASONS = ["non_english", "too_short"]


def contract_rows(n: int) -> list[tuple]:
    # Real-looking text with a deterministic drop pattern: every 7th non-English, every 5th too short.
    words = (FIXTURES / "SOURCES.md").read_text().split() or ["word"]
    rows = []
    for i in range(n):
        origin = f"sample.jsonl:{i}"
        text = " ".join(words[(i * 7 + k) % len(words)] for k in range(20 + i % 300))
        reason = "non_english" if i % 7 == 0 else "too_short" if i % 5 == 0 else None
        rows.append((doc_id("src", origin), "src", None, origin, "en", 0.99, text, len(text.encode()) + 1, reason))
    return rows


class StageOutput:
    """A stage folder written straight from a frame: the framework's writer and reuse rule without a stage."""

    def __init__(self, out: str, stage: str, inputs: list, config_hash: str, overwrite=False, keep_dropped=False):
        from blending.stage_folder import success_record

        self.out, self.stage, self.overwrite, self.keep_dropped = out, stage, overwrite, keep_dropped
        self.record = success_record(stage, "test", inputs, config_hash)

    def reusable(self) -> bool:
        from dataprep.framework.runner import reusable_output

        return reusable_output(self.out, self.record, self.overwrite, False, self.keep_dropped)

    def load_stats(self):
        from blending.stage_folder import read_stats
        from blending.stage_stats import StageStats

        return StageStats.from_dict(read_stats(self.out))

    def write(self, frame, config, reasons, keep_dropped=False, expected_in_rows=None):
        from dataprep.framework.spark_folders import FolderSpec, write_folder
        from dataprep.framework.stage import Extras

        spec = FolderSpec(self.out, self.stage, reasons, self.record, config, keep_dropped)
        return write_folder(frame, spec, lambda: expected_in_rows, lambda stats: Extras())


# -- the golden stage folders (tests/fixtures/stages_before, tests/regenerate_golden.py) ------------------
GOLDEN_STAGES = FIXTURES / "stages_before"
GOLDEN_WARCS = ("resiliparse_warcfile.warc.gz", "whirlwind.warc.gz", "resiliparse_clipped.warc.gz")


def write_golden_stages(spark, out: Path) -> list[str]:
    """extract, cleanup, ingest-text and cleanup-text of the fixture files under `out`, as the golden
    folders were written (2 buckets, dropped rows kept). Returns the folder names."""
    from dataprep.config import DataprepConfig
    from dataprep.pipeline import run

    def config() -> DataprepConfig:
        config = DataprepConfig()
        config.output.num_buckets = 2
        return config

    warcs = [str(FIXTURES / "warc" / name) for name in GOLDEN_WARCS]
    run("extract", spark, warcs, str(out / "extract"), config(), source="common-crawl", keep_dropped=True)
    run("cleanup", spark, str(out / "extract"), str(out / "cleanup"), config(), keep_dropped=True)
    run("ingest", spark, str(FIXTURES / "text" / "sherlock_holmes_head.txt"), str(out / "ingest-text"),
        config(), source="gutenberg", format="text", unit="paragraph", keep_dropped=True)
    run("cleanup", spark, str(out / "ingest-text"), str(out / "cleanup-text"), config(), keep_dropped=True)
    return ["extract", "cleanup", "ingest-text", "cleanup-text"]


def golden_files(folder: Path) -> dict[str, bytes]:
    """A stage folder's files as the golden copy keeps them: all but _SUCCESS (it names local paths)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "_SUCCESS"}


def foreign_model(folder: str) -> None:
    """FOLDER/other.bin: a fastText model of the labels news and sports, from the shipped texts."""
    from dataprep.config import ClassifierConfig
    from dataprep.quality.corpus import Example, default_paths, load_examples
    from dataprep.quality.train import fit

    examples = load_examples(*default_paths(), 512, 50, seed=0)[:200]
    topics = [Example("news" if i % 2 else "sports", e.source, e.group, e.text) for i, e in enumerate(examples)]
    fit(topics, ClassifierConfig(epoch=1), folder).save_model(f"{folder}/other.bin")
