"""blending without Spark: blending indices vs megatron's helper, the shard writer vs megatron's reader
and writer, the tokenizer, shard planning, the validation split, presets and config."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tokenizers import Tokenizer

from blending.blend import blending_indices, normalize, prefix_deviation, shard_weights
from blending.build import resolve_tokenizer
from blending.config import BlendConfig, ConfigError
from blending.documents import is_validation, iter_texts, plan_shards, validation_draw
from blending.indexed import IndexedDatasetWriter, read_index_summary
from blending.presets import MTNLG_TABLE1, MTNLG_TRAINING_TOKENS_BILLION
from blending.tokenizer import (
    EOD_TOKEN,
    TokenizerError,
    encode_documents,
    eod_id,
    from_gpt2_files,
    load_tokenizer,
    prepare,
    train_bpe,
)
from dataprep.schema import DEFAULT_SOURCE, doc_id
from tests.helpers import ROOT, document_rows, paragraphs, write_stage_folder

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from megatron.core.datasets import helpers
    from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder

@pytest.fixture(scope="module")
def texts() -> list[str]:
    return paragraphs("pride_and_prejudice_head.txt") + paragraphs("wikitext2_valid_head.txt")


@pytest.fixture(scope="module")
def tokenizer(texts):
    return prepare(train_bpe(texts, vocab_size=1200))


# -- blending ---------------------------------------------------------------------------------------------

PAPER_WEIGHTS = normalize([p.weight_percent for p in MTNLG_TABLE1])
WEIGHT_VECTORS = [
    [1.0],
    [0.5, 0.5],
    normalize([1, 1, 1]),  # ties at every step
    [0.999, 0.001],
    PAPER_WEIGHTS,
    normalize(np.random.default_rng(7).dirichlet(np.ones(40)).tolist()),
    normalize([3, 1, 4, 1, 5, 9, 2, 6]),
]


@pytest.mark.parametrize("weights", WEIGHT_VECTORS, ids=lambda w: f"{len(w)}-datasets")
@pytest.mark.parametrize("size", [1, 2, 37, 5000])
def test_blending_indices_equal_megatron_helper(weights, size):
    ours = blending_indices(weights, size)
    dataset_index = np.zeros(size, dtype=np.int16)
    sample_index = np.zeros(size, dtype=np.int64)
    helpers.build_blending_indices(dataset_index, sample_index, weights, len(weights), size, False)
    np.testing.assert_array_equal(ours[0], dataset_index)
    np.testing.assert_array_equal(ours[1], sample_index)


@pytest.mark.parametrize("weights", WEIGHT_VECTORS[1:], ids=lambda w: f"{len(w)}-datasets")
def test_every_prefix_stays_within_one_sample_of_the_weights(weights):
    dataset_index, sample_index = blending_indices(weights, 20000)
    n = np.arange(1, dataset_index.size + 1)
    for j, w in enumerate(weights):
        drawn = np.cumsum(dataset_index == j)
        assert np.abs(drawn - w * n).max() <= 1.0
        # samples of a dataset are taken in order, each once
        np.testing.assert_array_equal(sample_index[dataset_index == j], np.arange(drawn[-1]))
    assert prefix_deviation(dataset_index, weights, skip=1000) <= 1.0 / 1000


def test_shard_weights_spread_a_source_by_tokens():
    assert shard_weights(0.3, [100, 300]) == pytest.approx([0.075, 0.225])
    with pytest.raises(ValueError):
        shard_weights(0.3, [])


def test_normalize_refuses_non_positive_weights():
    with pytest.raises(ValueError):
        normalize([0.5, 0.0])


# -- the indexed dataset writer --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_writer_bytes_equal_megatron_builder_and_megatron_reads_them(tmp_path, tokenizer, texts, dtype):
    eod = eod_id(tokenizer)
    flat, lengths = encode_documents(tokenizer, texts[:300], eod, np.dtype(dtype))
    ours = IndexedDatasetWriter(tmp_path / "ours", np.dtype(dtype))
    ours.add_documents(flat[: lengths[:100].sum()], lengths[:100])  # in two calls: streaming
    ours.add_documents(flat[lengths[:100].sum():], lengths[100:])
    written = ours.close()

    builder = IndexedDatasetBuilder(str(tmp_path / "megatron.bin"), dtype=dtype)
    for doc in np.split(flat, np.cumsum(lengths)[:-1]):
        builder.add_document(doc, [doc.size])
    builder.finalize(str(tmp_path / "megatron.idx"))
    for ext in ("bin", "idx"):
        assert (tmp_path / f"ours.{ext}").read_bytes() == (tmp_path / f"megatron.{ext}").read_bytes()

    dataset = IndexedDataset(str(tmp_path / "ours"))
    assert len(dataset) == 300 == written.documents
    for i in (0, 99, 100, 299):
        expected = tokenizer.encode(texts[i], add_special_tokens=False).ids + [eod]
        assert dataset[i].tolist() == expected
    summary = read_index_summary(tmp_path / "ours.idx")
    assert (summary.documents, summary.tokens, summary.dtype) == (300, int(lengths.sum()), np.dtype(dtype))
    assert written.bin.bytes == int(lengths.sum()) * np.dtype(dtype).itemsize


# -- the tokenizer ---------------------------------------------------------------------------------------


def test_bpe_training_is_deterministic(texts, tmp_path):
    first, second = train_bpe(texts, 1200), train_bpe(texts, 1200)
    first.save(str(tmp_path / "a.json"))
    second.save(str(tmp_path / "b.json"))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert first.get_vocab_size() == 1200 and first.token_to_id(EOD_TOKEN) == 0


def test_encode_documents_appends_one_eod_and_encodes_special_token_text_as_text(tokenizer, texts):
    eod = eod_id(tokenizer)
    docs = texts[:50] + [texts[50] + " " + EOD_TOKEN + " " + texts[51], ""]
    flat, lengths = encode_documents(tokenizer, docs, eod, np.dtype(np.uint16))
    pieces = np.split(flat, np.cumsum(lengths)[:-1])
    for doc, piece in zip(docs, pieces, strict=True):
        assert piece.tolist() == tokenizer.encode(doc, add_special_tokens=False).ids + [eod]
        assert np.flatnonzero(piece == eod).tolist() == [piece.size - 1]
    assert tokenizer.decode(pieces[50][:-1].tolist()) == docs[50]  # byte-level: lossless


def test_gpt2_vocab_and_merges_give_the_same_tokens(tokenizer, texts, tmp_path):
    tokenizer.model.save(str(tmp_path))  # writes vocab.json + merges.txt, GPT-2's format
    from_files = prepare(from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt"))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    reloaded = load_tokenizer(tmp_path / "tokenizer.json")
    for text in texts[:100]:
        ids = tokenizer.encode(text).ids
        assert from_files.encode(text, add_special_tokens=False).ids == ids == reloaded.encode(text).ids
    assert eod_id(from_files) == eod_id(tokenizer)


def test_resolve_tokenizer_reads_gpt2_files_or_trains_on_the_training_documents(tokenizer, texts, tmp_path):
    tokenizer.model.save(str(tmp_path))
    rows = document_rows("wikipedia", "wikitext2_valid_head.txt", paragraphs("wikitext2_valid_head.txt"))
    write_stage_folder(tmp_path / "docs", rows)
    sources = [{"name": "wikipedia", "inputs": [str(tmp_path / "docs")], "weight": 1}]
    gpt2 = resolve_tokenizer(BlendConfig.from_dict({
        "tokenizer": {"vocab": str(tmp_path / "vocab.json"), "merges": str(tmp_path / "merges.txt")}, "sources": sources}))
    assert (gpt2.vocab_size, gpt2.eod_id) == (1200, 0)
    assert Tokenizer.from_str(gpt2.json_bytes.decode()).encode(texts[0]).ids == tokenizer.encode(texts[0]).ids

    target = tmp_path / "trained" / "tokenizer.json"
    config = BlendConfig.from_dict({"tokenizer": {"file": str(target), "train_vocab_size": 600}, "sources": sources})
    trained = resolve_tokenizer(config, log=lambda *_: None)
    assert target.read_bytes() == trained.json_bytes and trained.vocab_size == 600
    assert [p.name for p in target.parent.iterdir()] == ["tokenizer.json"]  # renamed into place, nothing left
    train_texts = list(iter_texts([tmp_path / "docs"], "wikipedia", exclude_valid_fraction=config.valid_fraction))
    assert len(train_texts) == sum(not is_validation(r["doc_id"], config.valid_fraction) for r in rows) < len(rows)
    assert Tokenizer.from_str(trained.json_bytes.decode()).to_str() == train_bpe(train_texts, 600).to_str()
    assert resolve_tokenizer(config).sha256 == trained.sha256  # an existing file is used as it is

    nothing = BlendConfig.from_dict({"tokenizer": {"file": str(tmp_path / "none.json"), "train_vocab_size": 600},
                                     "sources": [{**sources[0], "select_source": "books"}]})
    with pytest.raises(TokenizerError, match="no training documents"):
        resolve_tokenizer(nothing)
    assert not (tmp_path / "none.json").exists()


# -- documents -------------------------------------------------------------------------------------------


def test_plan_shards_closes_before_the_limit():
    assert plan_shards([4, 4, 4, 4], 8) == [0, 2]
    assert plan_shards([4, 5, 3], 8) == [0, 1]
    assert plan_shards([20, 1, 1], 8) == [0, 1]  # a long document gets a shard of its own
    assert plan_shards([], 8) == []


def test_validation_draw_is_stable_and_about_two_percent():
    ids = [doc_id("wikipedia", f"wiki.jsonl:{i}") for i in range(20000)]
    share = np.mean([is_validation(d, 0.02) for d in ids])
    assert abs(share - 0.02) <= 3 * np.sqrt(0.02 * 0.98 / len(ids))
    assert validation_draw(ids[0]) == validation_draw(ids[0]) and 0 <= validation_draw(ids[0]) < 1
    # independent of the output-file bucket (doc_id's first hex digits)
    assert abs(np.corrcoef([int(d[:8], 16) for d in ids], [validation_draw(d) for d in ids])[0, 1]) < 0.05


# -- presets and config ----------------------------------------------------------------------------------


def test_paper_table1_is_consistent():
    assert len(MTNLG_TABLE1) == 15
    assert sum(p.weight_percent for p in MTNLG_TABLE1) == pytest.approx(100.0, abs=0.2)
    assert sum(p.tokens_billion for p in MTNLG_TABLE1) == pytest.approx(339, abs=0.5)
    for p in MTNLG_TABLE1:  # epochs = weight x 270B / tokens, to the table's rounding
        assert p.weight_percent / 100 * MTNLG_TRAINING_TOKENS_BILLION / p.tokens_billion == pytest.approx(p.epochs, abs=0.15)


def test_default_config_is_the_paper_blend():
    config = BlendConfig.load(ROOT / "infra" / "blend.yaml")
    *paper, default = config.sources
    assert [s.name for s in paper] == [p.name for p in MTNLG_TABLE1]
    assert [s.weight for s in paper] == [p.weight_percent / 100 for p in MTNLG_TABLE1]
    assert config.skip_missing_sources and config.valid_fraction == 0.02
    # and the pipeline's default source (`dataprep run --input WARCS`, `make demo`), weighted as the
    # paper's two Common Crawl snapshots together; absent from a run of the paper's sources
    cc = {p.name: p.weight_percent / 100 for p in MTNLG_TABLE1 if p.name.startswith("cc_20")}
    assert (default.name, default.weight) == (DEFAULT_SOURCE, pytest.approx(sum(cc.values())))


@pytest.mark.parametrize("change, message", [
    ({"sources": [{"name": "a", "inputs": ["x"], "weight": 1}, {"name": "a", "inputs": ["y"], "weight": 1}]}, "twice"),
    ({"sources": [{"name": "a", "inputs": ["x"]}]}, "no weight"),
    ({"sources": [{"name": "a/b", "inputs": ["x"], "weight": 1}]}, "letters"),
    ({"valid_fraction": 1.5}, "valid_fraction"),
    ({"tokenizer": {}}, "tokenizer needs"),
    ({"shard_size": 5}, "shard_size: unknown key"),
    ({"valid_fraction": "x"}, "valid_fraction: expected a number, got .x."),
])
def test_config_errors_are_clear(change, message):
    raw = {"tokenizer": {"file": "t.json"}, "sources": [{"name": "a", "inputs": ["x"], "weight": 1}], **change}
    with pytest.raises(ConfigError, match=message):
        BlendConfig.from_dict(raw)


def test_the_reader_imports_neither_pyspark_nor_dataprep():
    """Every module blending.reader reaches, at any depth and inside functions too, by its import statements."""
    import ast

    seen, todo, outside = set(), ["blending.reader"], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                if name.startswith("blending."):
                    todo.append(name)
                else:
                    outside.add(name.split(".")[0])
    assert {"blending.manifest", "blending.tokenizer", "blending.indexed"} <= seen
    assert not outside & {"pyspark", "dataprep"}, outside


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_an_index_cache_that_is_no_plain_array_is_refused_before_megatron_unpickles_it(tmp_path):
    import pickle

    from blending.manifest import ManifestError
    from blending.reader import check_index_caches

    cache = tmp_path / "index-cache"
    cache.mkdir()
    np.save(cache / "abc-GPTDataset-train-shuffle_index.npy", np.arange(10, dtype=np.int64))
    check_index_caches(cache)  # megatron's own caches: plain arrays
    marker = tmp_path / "PWNED"
    planted = cache / "abc-GPTDataset-train-sample_index.npy"
    planted.write_bytes(pickle.dumps(_RunsAShellCommand(marker)))
    with pytest.raises(ManifestError, match=f"{planted}: not a plain numpy array"):
        check_index_caches(cache)
    assert not marker.exists()
    # the plant is real: unpickled (as megatron-core would), it calls os.system (read with pickletools, never run)
    import pickletools

    strings = [arg for _, arg, _ in pickletools.genops(planted.read_bytes()) if isinstance(arg, str)]
    assert any(s.split()[-1] == "system" for s in strings if s) and f"touch {marker}" in strings
