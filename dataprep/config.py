"""The dataprep service's one typed config. Defaults are the MT-NLG 530B paper's values."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from blending.remote_files import RemoteConfig
from blending.typed_config import load_dataclass, read_mapping


@dataclass
class OutputConfig:
    num_buckets: int = 16  # files per stage output; rows go to a file by a stable hash of doc_id
    rows_per_row_group: int = 4096  # fixed, so files do not depend on Spark's batch boundaries
    compression: str = "zstd"


@dataclass
class ExtractConfig:
    max_payload_bytes: int = 10 * 1024 * 1024
    min_extracted_chars: int = 1  # below this the page is dropped as empty_extraction


@dataclass
class CleanupConfig:
    languages: tuple[str, ...] = ("en",)  # ("all",) keeps every language
    langdetect_seed: int = 0
    javascript_max_chars: int = 256  # contains "javascript" and shorter than this -> javascript_notice
    min_chars: int = 512  # shorter -> too_short


@dataclass
class QualityConfig:
    pareto_alpha: float = 3.0  # GPT-3's Pareto filter: keep when pareto_draw > 1 - quality_score
    pareto_seed: int = 0  # mixed into each document's draw: sha256(doc_id + NUL + str(seed))


@dataclass
class ClassifierConfig:
    """The quality classifier's training (python -m dataprep train-classifier)."""

    word_ngrams: int = 2  # the paper's word 2-grams
    dim: int = 16  # model bytes ~ (words + bucket) x dim x 4: ~6 MB, not fastText's ~800 MB default
    bucket: int = 65536  # hash buckets for the 2-grams
    epoch: int = 10
    lr: float = 0.5
    min_count: int = 1
    seed: int = 0  # fastText's seed; training runs on one thread, so the model is the same every time
    window_chars: int = 512  # every example is a window of this many characters (cleanup's min_chars)
    max_windows_per_group: int = 50  # per book / speech / article / web host and label
    folds: int = 5  # cross-validation, grouped by book / page host
    heldout_fraction: float = 0.1  # groups held out of the shipped model's training (the paper: 10%)


# Which copy of a duplicate survives, best first (unlisted sources come after, by name): curated
# sources before crawls, then the paper's Table 1 order. A choice of this config, not the paper's.
DEDUP_PRIORITY = (
    "books3", "openwebtext2", "stack_exchange", "pubmed_abstracts", "wikipedia", "gutenberg_pg19",
    "bookcorpus2", "nih_exporter", "pile_cc", "arxiv", "github", "cc_2020_50", "cc_2021_04", "realnews",
    "cc_stories",
)


@dataclass
class DedupConfig:
    num_perm: int = 260
    bands: int = 20
    rows_per_band: int = 13
    jaccard_threshold: float = 0.8
    shingle_words: int = 5  # word 5-grams of the normalised text
    seed: int = 1  # MinHash permutations, drawn as datasketch.MinHash(num_perm, seed) draws them
    bucket_anchors: int = 8  # members of an LSH bucket every other member is compared with
    priority: tuple[str, ...] = DEDUP_PRIORITY
    partitions: int = 0  # Spark shuffle partitions of the stage's joins; 0: twice the default parallelism


@dataclass
class DecontaminationConfig:
    ngram: int = 13  # words per indexed n-gram
    cut_chars: int = 200  # removed on each side of a match, then on to the sentence end
    min_piece_chars: int = 200  # shorter pieces of a split document are dropped
    max_splits: int = 10  # more cuts (after merging) -> the document is dropped as contaminated
    min_task_words: int = 8  # shorter task texts are ignored; up to `ngram` words they count whole
    frequent_ngram_count: int = 10  # n-grams in this many corpus documents are exempt (0: none)


@dataclass
class DataprepConfig:
    output: OutputConfig = field(default_factory=OutputConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    cleanup: CleanupConfig = field(default_factory=CleanupConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)  # S3 and HTTP(S) inputs: endpoint, retries

    @classmethod
    def load(cls, path: str | Path | None = None) -> DataprepConfig:
        """Defaults, overridden by a YAML file whose top-level keys are this class's fields (and
        `sources:`, which `python -m dataprep run` reads, dataprep/pipeline.py); checked by type."""
        if path is None:
            return cls()
        sections = {k: v for k, v in read_mapping(path).items() if k != "sources"}
        return load_dataclass(cls, sections, where=str(path))


def config_hash(*parts) -> str:
    """sha256 of the canonical JSON of config dataclasses (or plain values) a stage depends on."""
    def plain(p):
        return dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()
