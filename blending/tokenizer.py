"""The tokenizer: a byte-level BPE from HF `tokenizers`, trained here or loaded from files.

Every document is encoded on its own and ends with the end-of-document token. Special-token text
inside a document (a literal "<|endoftext|>") is encoded as ordinary text, so the only EOD ids in a
shard are the ones the builder appends.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOD_TOKEN = "<|endoftext|>"
TOKENIZER_FILE = "tokenizer.json"


class TokenizerError(ValueError):
    """A tokenizer that cannot be used for shards (missing files, no end-of-document token)."""


def train_bpe(texts: Iterable[str], vocab_size: int, eod_token: str = EOD_TOKEN, min_frequency: int = 2) -> Tokenizer:
    """A byte-level BPE trained on `texts`; the same texts in the same order give the same tokenizer.

    The end-of-document token is the first special token (id 0); all 256 bytes are in the
    alphabet, so any text encodes without unknown tokens.
    """
    if vocab_size < 257 + 1:
        raise TokenizerError(f"vocab_size {vocab_size} is below 256 byte tokens + the end-of-document token")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[eod_token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def from_gpt2_files(vocab_json: str | Path, merges_txt: str | Path, eod_token: str = EOD_TOKEN) -> Tokenizer:
    """A byte-level BPE from GPT-2 style `vocab.json` + `merges.txt` (what Megatron's GPT2BPETokenizer reads)."""
    tokenizer = Tokenizer(models.BPE.from_file(str(vocab_json), str(merges_txt)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    if tokenizer.token_to_id(eod_token) is None:
        raise TokenizerError(f"{vocab_json} has no end-of-document token {eod_token!r}")
    tokenizer.add_special_tokens([eod_token])
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A `tokenizer.json`, set up to encode special-token text inside documents as plain text."""
    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"tokenizer file {path} does not exist")
    return prepare(Tokenizer.from_file(str(path)))


def prepare(tokenizer: Tokenizer) -> Tokenizer:
    tokenizer.encode_special_tokens = True
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def eod_id(tokenizer: Tokenizer, eod_token: str = EOD_TOKEN) -> int:
    token_id = tokenizer.token_to_id(eod_token)
    if token_id is None:
        raise TokenizerError(f"the tokenizer has no end-of-document token {eod_token!r}")
    return token_id


def vocab_size(tokenizer: Tokenizer) -> int:
    return tokenizer.get_vocab_size(with_added_tokens=True)


def token_dtype(vocab: int) -> np.dtype:
    """uint16 when every id fits (Megatron's rule: vocabulary <= 65536), int32 otherwise."""
    return np.dtype(np.uint16) if vocab <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)


def single_threaded() -> None:
    """One core per Spark task: keep `encode_batch` from starting its own thread pool."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def encode_documents(tokenizer: Tokenizer, texts: Sequence[str], eod: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of all `texts`, each followed by `eod`, as one flat array plus the per-document lengths."""
    # the same ids as encode_batch, without the character offsets nothing here reads (a quarter less CPU)
    encodings = tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
    lengths = np.fromiter((len(e.ids) + 1 for e in encodings), dtype=np.int64, count=len(encodings))
    flat = np.empty(int(lengths.sum()), dtype=dtype)
    ends = np.cumsum(lengths)
    flat[ends - 1] = eod
    start = 0
    for encoding, end in zip(encodings, ends, strict=True):
        flat[start : end - 1] = encoding.ids
        start = end
    return flat, lengths
