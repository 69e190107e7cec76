"""What the trainer imports: the manifest and megatron-core datasets over its shards.

    manifest = load_manifest("out/shards/manifest.json")          # sizes and headers checked
    train, valid = build_gpt_datasets(manifest, seq_length=2048,
                                      num_samples={"train": 1000, "valid": 50}, seed=1234)
    item = train[0]   # {"tokens", "labels", "loss_mask", "position_ids"(, "dataset_id")}

`tokens` and `labels` are int64 tensors of `seq_length`: the sample is seq_length + 1 consecutive
tokens of the source's shuffled document stream (documents joined by their end-of-document token),
`tokens` its first seq_length, `labels` its last seq_length. Blended datasets add `dataset_id`, the
shard's index in `manifest.blend_per_split`. Imports neither pyspark nor dataprep.

The order of the stream depends on the seed, the sequence length and the number of samples asked for
(megatron shuffles over as many epochs as that number needs), so a run records them as a `DataStream`
(RUN/data_stream.json) and whoever asks "what was sample i" builds the same datasets from it:

    stream = DataStream.load("runs/r1")
    train, valid = stream.datasets(manifest)
    sample_pieces(train, 17)    # [(shard prefix, document, first token, end token), ...]
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from blending.atomic import write_text_atomic
from blending.manifest import Manifest, ManifestError, Shard, Source, load_manifest

with warnings.catch_warnings():  # megatron-core warns about optional GPU libraries at import
    warnings.simplefilter("ignore")
    from megatron.core.datasets.blended_dataset import BlendedDataset
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.tokenizers import MegatronTokenizerBase

__all__ = ["DataStream", "Manifest", "ManifestError", "ManifestTokenizer", "Shard", "Source", "build_gpt_datasets",
           "gpt_dataset_config", "load_manifest", "sample_pieces"]

STREAM_FILE = "data_stream.json"


class ManifestTokenizer(MegatronTokenizerBase):
    """The manifest's tokenizer as megatron-core's datasets need it: vocabulary size and EOD id.

    Shards are already tokenized, so only `tokenize`/`detokenize` for inspection go to HF tokenizers.
    """

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(str(manifest.tokenizer_path), {})
        self._manifest = manifest
        self._hf = None
        # part of the description megatron hashes to name its index caches
        self.unique_identifiers = {"class": type(self).__name__, "tokenizer_sha256": manifest.tokenizer_sha256,
                                   "vocab_size": manifest.vocab_size, "eod": manifest.eod_id}

    def _tokenizer(self):
        if self._hf is None:
            self._hf = self._manifest.load_tokenizer()
        return self._hf

    def tokenize(self, text: str) -> list[int]:
        return self._tokenizer().encode(text, add_special_tokens=False).ids

    def detokenize(self, ids: list[int]) -> str:
        return self._tokenizer().decode(list(ids), skip_special_tokens=False)

    @property
    def vocab(self) -> dict[str, int]:
        return self._tokenizer().get_vocab(with_added_tokens=True)

    @property
    def vocab_size(self) -> int:
        return self._manifest.vocab_size

    @property
    def eod(self) -> int:
        return self._manifest.eod_id

    def apply_chat_template(self, *args, **kwargs):
        raise NotImplementedError("pretraining shards have no chat template")


def gpt_dataset_config(manifest: Manifest, seq_length: int, seed: int, cache_dir: str | Path | None = None,
                       eod_mask_loss: bool = False, reset_position_ids: bool = False,
                       reset_attention_mask: bool = False, create_attention_mask: bool = False) -> GPTDatasetConfig:
    """megatron-core's config for the manifest's blend; index caches go to `cache_dir`
    (default: MANIFEST_DIR/index-cache, never inside the shard folders)."""
    return GPTDatasetConfig(
        random_seed=seed,
        sequence_length=seq_length,
        blend_per_split=manifest.blend_per_split,
        path_to_cache=str(cache_dir or manifest.root / "index-cache"),
        tokenizer=ManifestTokenizer(manifest),
        reset_position_ids=reset_position_ids,
        reset_attention_mask=reset_attention_mask,
        eod_mask_loss=eod_mask_loss,
        create_attention_mask=create_attention_mask,
    )


def build_gpt_datasets(manifest: Manifest, seq_length: int, num_samples: dict[str, int], seed: int,
                       cache_dir: str | Path | None = None, is_built_on_rank=None, **options):
    """(train, valid) megatron-core datasets: a BlendedDataset over every shard of the split, weighted
    as `manifest.blend_per_split` says, or a GPTDataset when the split has one shard.

    `num_samples` = {"train": n, "valid": m}; a blended dataset may hold a few more samples than asked
    (megatron rounds each shard's share up). `is_built_on_rank` is megatron's hook for distributed
    runs (default: every rank builds); `options` go to gpt_dataset_config.
    """
    missing = {"train", "valid"} - set(num_samples)
    if missing:
        raise ValueError(f"num_samples needs {sorted(missing)}")
    config = gpt_dataset_config(manifest, seq_length, seed, cache_dir, **options)
    is_built_on_rank = is_built_on_rank or (lambda: True)
    if is_built_on_rank():  # before it writes; other ranks wait for it, then read what it wrote and checked
        check_index_caches(Path(config.path_to_cache))
    sizes = [int(num_samples["train"]), int(num_samples["valid"]), None]
    builder = BlendedMegatronDatasetBuilder(GPTDataset, sizes, is_built_on_rank, config)
    with _process_group():
        train, valid, _ = builder.build()
    return train, valid


def check_index_caches(cache_dir: Path) -> None:
    """megatron-core reads its index caches with np.load(allow_pickle=True), which unpickles whatever a file
    that is no .npy array holds: a cache folder may be another user's, so every file must be a plain array."""
    for path in sorted(cache_dir.glob("*.npy")) if cache_dir.is_dir() else []:
        try:
            np.load(path, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError):
            raise ManifestError(f"{path}: not a plain numpy array (megatron-core would unpickle it); delete the "
                                f"index cache {cache_dir} to rebuild it") from None


@contextmanager
def _process_group():
    """megatron's BlendedDataset asks torch.distributed for the rank when it writes its index cache; outside
    a distributed run, a one-process group (in-memory store, no network) stands in while it builds."""
    if torch.distributed.is_initialized():
        yield
        return
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


@dataclass(frozen=True)
class DataStream:
    """What fixes a run's train and valid sample streams over a manifest."""

    seq_length: int
    seed: int
    train_samples: int
    valid_samples: int
    manifest: str | None = None  # the manifest the run read (absolute path)
    manifest_sha256: str | None = None

    def datasets(self, manifest: Manifest, cache_dir: str | Path | None = None, **options):
        """(train, valid) exactly as the run built them (build_gpt_datasets)."""
        return build_gpt_datasets(manifest, seq_length=self.seq_length, seed=self.seed, cache_dir=cache_dir,
                                  num_samples={"train": self.train_samples, "valid": self.valid_samples}, **options)

    def save(self, run_dir: str | Path) -> Path:
        return write_text_atomic(Path(run_dir) / STREAM_FILE, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, run_dir: str | Path) -> DataStream:
        path = Path(run_dir) / STREAM_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (is {run_dir} a training run's folder?)")
        return cls(**json.loads(path.read_text()))


def sample_pieces(dataset, index: int) -> list[tuple[str, int, int, int]]:
    """The pieces of documents sample `index` of a dataset from build_gpt_datasets is made of, in order:
    (shard prefix, document number in the shard, first token, end token), the end exclusive; their
    tokens joined are the sample's seq_length + 1 tokens. The same lookups megatron's GPTDataset makes
    to read the sample (blend -> shard sample -> shuffle -> sample index -> document index)."""
    if not 0 <= index < len(dataset):
        raise IndexError(f"sample {index} outside the stream's {len(dataset)} samples")
    if isinstance(dataset, BlendedDataset):
        dataset, index = dataset.datasets[int(dataset.dataset_index[index])], int(dataset.dataset_sample_index[index])
    if dataset.shuffle_index is None:  # megatron maps its indexes lazily when asked to defer
        # numbers only: a cache file from another user is never unpickled
        dataset.shuffle_index = np.load(dataset.path_to_shuffle_index, allow_pickle=False, mmap_mode="r")
        dataset.sample_index = np.load(dataset.path_to_sample_index, allow_pickle=False, mmap_mode="r")
        dataset.document_index = np.load(dataset.path_to_document_index, allow_pickle=False, mmap_mode="r")
    shuffled = int(dataset.shuffle_index[index])
    first, first_offset = (int(v) for v in dataset.sample_index[shuffled])
    last, last_offset = (int(v) for v in dataset.sample_index[shuffled + 1])
    extra = int(dataset.config.add_extra_token_to_sequence)
    lengths = dataset.dataset.sequence_lengths
    pieces = []
    for position in range(first, last + 1):
        doc = int(dataset.document_index[position])
        start = first_offset if position == first else 0
        end = last_offset + extra if position == last else int(lengths[doc])
        pieces.append((dataset.dataset_path, doc, start, end))
    return pieces
