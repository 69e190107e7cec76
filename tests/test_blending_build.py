"""The shard builder end to end on real text (one Spark session): megatron-core reads what we write,
verify catches damage, the reader's datasets equal megatron's own, preview reports the mixture."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from blending.__main__ import main
from blending.blend import blending_indices, normalize
from blending.build import build
from blending.config import BlendConfig
from blending.docindex import read_document_index, write_document_index
from blending.documents import is_validation
from blending.indexed import read_document
from blending.locate import locate_samples
from blending.manifest import ManifestError, load_manifest
from blending.preview import preview
from blending.reader import DataStream, build_gpt_datasets
from blending.stage_folder import InputError, OutputExistsError
from blending.tokenizer import EOD_TOKEN, train_bpe
from tests.helpers import document_rows, paragraphs, write_stage_folder

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from megatron.core.datasets.blended_dataset import BlendedDataset
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset

SHARD_TOKENS = 30_000
WEIGHTS = {"gutenberg": 0.3, "shakespeare": 0.2, "wikipedia": 0.5}
VALID_FRACTION = 0.02


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("blend")
    books = document_rows("gutenberg", "pride_and_prejudice_head.txt", paragraphs("pride_and_prejudice_head.txt"))
    plays = document_rows("shakespeare", "tinyshakespeare_head.txt", paragraphs("tinyshakespeare_head.txt"))
    wiki = document_rows("wikipedia", "wikitext2_valid_head.txt", paragraphs("wikitext2_valid_head.txt"))
    # fault cases: no text, empty text, the EOD token's text inside a document; rows no config claims
    books += document_rows("gutenberg", "faults", [None, ""])
    wiki[5]["text"] += f" {EOD_TOKEN} " + wiki[6]["text"]
    unclaimed = document_rows("poetry", "tinyshakespeare_head.txt", paragraphs("tinyshakespeare_head.txt")[:7])
    write_stage_folder(root / "books", books + plays + unclaimed)
    write_stage_folder(root / "wiki", wiki)
    texts = [r["text"] for r in books + plays + wiki if r["text"]]
    train_bpe(texts, vocab_size=1000).save(str(root / "tokenizer.json"))
    return {"root": root, "docs": {"gutenberg": books, "shakespeare": plays, "wikipedia": wiki}}


def blend_config(corpus, **changes) -> BlendConfig:
    root = corpus["root"]
    raw = {
        "tokenizer": {"file": str(root / "tokenizer.json")},
        "valid_fraction": VALID_FRACTION,
        "shard_size_tokens": SHARD_TOKENS,
        "sources": [
            {"name": "gutenberg", "inputs": [str(root / "books")], "weight": WEIGHTS["gutenberg"]},
            {"name": "shakespeare", "inputs": [str(root / "books")], "weight": WEIGHTS["shakespeare"]},
            {"name": "wikipedia", "inputs": str(root / "wiki"), "weight": WEIGHTS["wikipedia"]},
        ],
        **changes,
    }
    return BlendConfig.from_dict(raw)


@pytest.fixture(scope="module")
def built(spark, corpus):
    root = corpus["root"]
    config = blend_config(corpus)
    one = build(config, root / "out_one", master="local[2]", partitions=1)
    return {"one": one.parent, "manifest": one, "config": config}


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # a second build of the corpus, to compare with the first
def test_byte_identical_across_partition_counts(built, corpus):
    five = build(built["config"], corpus["root"] / "out_five", master="local[2]", partitions=5)
    one, five = files_of(built["one"]), files_of(five.parent)
    assert one.keys() == five.keys()
    assert [k for k in one if one[k] != five[k]] == []
    assert not [p for p in corpus["root"].iterdir() if ".tmp-" in p.name]


def expected_documents(corpus, source: str, split: str) -> list[dict]:
    rows = [r for r in corpus["docs"][source] if r["text"]]
    rows = [r for r in rows if is_validation(r["doc_id"], VALID_FRACTION) == (split == "valid")]
    return sorted(rows, key=lambda r: r["doc_id"])


def test_megatron_reads_every_shard_as_the_directly_tokenized_documents(built, corpus):
    manifest = load_manifest(built["manifest"], verify_hashes=True)
    tokenizer, eod = manifest.load_tokenizer(), manifest.eod_id
    assert manifest.vocab_size == 1000 and eod == tokenizer.token_to_id(EOD_TOKEN)
    for name, source in manifest.sources.items():
        for split in ("train", "valid"):
            read = []
            for shard in source.shards(split):
                dataset = IndexedDataset(shard.prefix)
                assert dataset.index.dtype == np.uint16
                assert len(dataset) == shard.documents
                read += [dataset[i].tolist() for i in range(len(dataset))]
            expected = [tokenizer.encode(r["text"], add_special_tokens=False).ids + [eod]
                        for r in expected_documents(corpus, name, split)]
            assert read == expected, (name, split)
            assert all(doc.count(eod) == 1 and doc[-1] == eod for doc in read)


def test_train_and_valid_split_the_documents_two_percent_to_validation(built, corpus):
    manifest = load_manifest(built["manifest"])
    kept = valid = 0
    for name, source in manifest.sources.items():
        rows = [r for r in corpus["docs"][name] if r["text"]]
        train_ids = {r["doc_id"] for r in expected_documents(corpus, name, "train")}
        valid_ids = {r["doc_id"] for r in expected_documents(corpus, name, "valid")}
        assert not train_ids & valid_ids and len(train_ids) + len(valid_ids) == len(rows)
        assert (source.documents("train"), source.documents("valid")) == (len(train_ids), len(valid_ids))
        kept, valid = kept + len(rows), valid + len(valid_ids)
    tolerance = 3 * np.sqrt(VALID_FRACTION * (1 - VALID_FRACTION) / kept)  # three binomial standard deviations
    assert abs(valid / kept - VALID_FRACTION) <= tolerance


def test_shards_close_before_the_configured_size(built):
    manifest = load_manifest(built["manifest"])
    shards = [shard for split in ("train", "valid") for _, shard in manifest.shards(split)]
    assert all(s.tokens <= SHARD_TOKENS or s.documents == 1 for s in shards)
    assert len(manifest.sources["wikipedia"].train) >= 3
    assert [s.relative_prefix for s in manifest.sources["wikipedia"].train][:2] == [
        "wikipedia/train_00000", "wikipedia/train_00001"]


def test_manifest_fields_and_blend_per_split(built):
    raw = json.loads(built["manifest"].read_text())
    assert list(raw) == ["format_version", "tokenizer", "sources", "blend_per_split"]
    assert list(raw["tokenizer"]) == ["file", "sha256", "vocab_size", "eod_id"]
    assert {n: s["weight"] for n, s in raw["sources"].items()} == pytest.approx(WEIGHTS)
    train, valid, test = raw["blend_per_split"]
    assert test is None
    assert train[0] == [s["prefix"] for src in raw["sources"].values() for s in src["train"]]
    per_source = {}
    for prefix, weight in zip(*train, strict=True):
        per_source[prefix.split("/")[0]] = per_source.get(prefix.split("/")[0], 0) + weight
    assert per_source == pytest.approx(WEIGHTS)


def test_stats_account_for_every_document(built, corpus):
    stats = json.loads((built["one"] / "stats.json").read_text())
    claimed = sum(len(rows) for rows in corpus["docs"].values())
    assert stats["in"]["rows"] == claimed == stats["kept"]["rows"] + sum(stats["dropped"].values())
    assert stats["dropped"] == {"null_text": 1, "empty_text": 1}
    assert stats["out"]["tokens"] == load_manifest(built["manifest"]).tokens("train") + load_manifest(
        built["manifest"]).tokens("valid")
    assert stats["extra"]["unclaimed_rows"] == {str(corpus["root"] / "books"): {"poetry": 7}}


def test_a_rebuild_is_reused_a_changed_config_refused_or_overwritten(built, corpus):
    manifest = built["manifest"]
    before = manifest.stat().st_mtime_ns
    assert build(built["config"], built["one"]) == manifest and manifest.stat().st_mtime_ns == before
    heavier = blend_config(corpus, skip_missing_sources=True, sources=[
        {"name": "gutenberg", "inputs": [str(corpus["root"] / "books")], "weight": 0.3},
        {"name": "arxiv", "inputs": [str(corpus["root"] / "no_such_folder")], "weight": 0.3},  # left out
        {"name": "epics", "inputs": [str(corpus["root"] / "books")], "weight": 0.2},  # no such rows: left out
        {"name": "wikipedia", "inputs": [str(corpus["root"] / "wiki")], "weight": 0.2}])
    with pytest.raises(OutputExistsError, match="config_hash"):
        build(heavier, built["one"])
    copy = corpus["root"] / "out_copy"
    shutil.copytree(built["one"], copy)
    build(heavier, copy, overwrite=True)
    rebuilt = load_manifest(copy / "manifest.json", verify_hashes=True)
    assert {n: s.weight for n, s in rebuilt.sources.items()} == pytest.approx({"gutenberg": 0.6, "wikipedia": 0.4})
    stats = json.loads((copy / "stats.json").read_text())
    assert stats["extra"]["skipped_sources"] == ["arxiv"] and stats["extra"]["sources"]["epics"]["in_rows"] == 0
    assert stats["extra"]["unclaimed_rows"] == {str(corpus["root"] / "books"): {"poetry": 7, "shakespeare": 1072}}
    assert not (copy / "epics").exists() and not (copy / "_runs").exists()
    assert files_of(copy)["gutenberg/train_00000.bin"] == files_of(built["one"])["gutenberg/train_00000.bin"]
    assert not [p for p in corpus["root"].iterdir() if ".old-" in p.name or ".tmp-" in p.name]


def test_a_failed_build_leaves_no_output(corpus):
    shutil.copytree(corpus["root"] / "books", corpus["root"] / "books_again")
    doubled = blend_config(corpus, sources=[
        {"name": "gutenberg", "inputs": [str(corpus["root"] / "books"), str(corpus["root"] / "books_again")], "weight": 1}])
    with pytest.raises(InputError, match="occurs twice"):
        build(doubled, corpus["root"] / "out_failed")
    assert not [p for p in corpus["root"].iterdir() if p.name.startswith("out_failed")]


# -- verify ----------------------------------------------------------------------------------------------


@pytest.fixture
def damaged(built, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(built["one"], copy)
    return copy


def test_verify_passes_an_intact_build(built, capsys):
    assert main(["verify", str(built["manifest"])]) == 0
    assert capsys.readouterr().out.startswith("OK: ")


def test_verify_catches_a_flipped_byte(damaged, capsys):
    target = damaged / "shakespeare" / "train_00001.bin"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    load_manifest(damaged / "manifest.json")  # same size: only the hash can tell
    with pytest.raises(ManifestError, match="shakespeare/train_00001.bin: sha256"):
        load_manifest(damaged / "manifest.json", verify_hashes=True)
    assert main(["verify", str(damaged / "manifest.json")]) == 2
    assert "train_00001.bin" in capsys.readouterr().err


def test_verify_catches_a_missing_file(damaged):
    (damaged / "wikipedia" / "valid_00000.idx").unlink()
    with pytest.raises(ManifestError, match="wikipedia/valid_00000.idx: missing"):
        load_manifest(damaged / "manifest.json")


def test_verify_catches_a_truncated_idx(damaged):
    target = damaged / "gutenberg" / "train_00000.idx"
    target.write_bytes(target.read_bytes()[:-8])
    with pytest.raises(ManifestError, match="gutenberg/train_00000.idx"):
        load_manifest(damaged / "manifest.json")
    with pytest.raises(ManifestError, match="gutenberg/train_00000.idx"):
        load_manifest(damaged / "manifest.json", verify_hashes=True)


def test_verify_catches_a_tokenizer_hash_mismatch(damaged):
    raw = json.loads((damaged / "manifest.json").read_text())
    raw["tokenizer"]["sha256"] = "0" * 64
    (damaged / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="tokenizer.json: sha256"):
        load_manifest(damaged / "manifest.json", verify_hashes=True)


def test_verify_catches_an_altered_document_index(damaged, capsys):
    """The same documents under another origin: same row count, so only the hash can tell."""
    prefix = damaged / "wikipedia" / "train_00001"
    index = read_document_index(prefix).to_pylist()
    index[3]["origin"] = "somewhere-else.warc.gz@0"
    write_document_index(prefix, *zip(*((r["doc_id"], r["origin"], r["url"]) for r in index), strict=True))
    load_manifest(damaged / "manifest.json")  # the trainer's size checks do not read lineage
    with pytest.raises(ManifestError, match="wikipedia/train_00001.docs.parquet"):
        load_manifest(damaged / "manifest.json", verify_hashes=True)
    assert main(["verify", str(damaged / "manifest.json")]) == 2
    assert "train_00001.docs.parquet" in capsys.readouterr().err


# -- lineage ---------------------------------------------------------------------------------------------


def test_document_index_names_every_shard_document_in_order(built, corpus):
    manifest = load_manifest(built["manifest"], verify_hashes=True)
    for name, source in manifest.sources.items():
        for split in ("train", "valid"):
            listed = [row for shard in source.shards(split) for row in read_document_index(shard.prefix).to_pylist()]
            expected = [{"doc_id": r["doc_id"], "origin": r["origin"], "url": r["url"]}
                        for r in expected_documents(corpus, name, split)]
            assert listed == expected, (name, split)
    raw = json.loads(built["manifest"].read_text())
    entry = raw["sources"]["wikipedia"]["train"][0]
    assert list(entry) == ["prefix", "documents", "tokens", "bin", "idx", "docs"]
    assert entry["docs"]["bytes"] == (built["one"] / "wikipedia" / "train_00000.docs.parquet").stat().st_size


@pytest.fixture(scope="module")
def stream(built, tmp_path_factory):
    """The train stream of a 64-token, 600-sample run over the built manifest."""
    manifest = load_manifest(built["manifest"])
    train, _ = DataStream(64, 1234, 600, 20).datasets(manifest, cache_dir=tmp_path_factory.mktemp("stream"))
    return manifest, train


def test_located_pieces_are_the_samples_tokens_and_their_documents_texts(stream, corpus):
    manifest, train = stream
    texts = {r["doc_id"]: r["text"] for rows in corpus["docs"].values() for r in rows}
    origins = {r["doc_id"]: r["origin"] for rows in corpus["docs"].values() for r in rows}
    spanning = 0
    for i in range(0, len(train), 13):
        located = locate_samples(manifest, train, [i])[0]
        assert located["sample"] == i
        pieces = located["documents"]
        spanning += len(pieces) > 1
        joined = []
        for d in pieces:
            start, end = d["token_range"]
            joined += read_document(manifest.root / d["shard"], d["doc"])[start:end].tolist()
            assert d["text"] == texts[d["doc_id"]] and d["origin"] == origins[d["doc_id"]]
            assert d["split"] == "train" and d["shard"].startswith(d["source"] + "/")
        item = train[i]
        assert joined == item["tokens"].tolist() + item["labels"][-1:].tolist()
    assert spanning > 0  # samples that cross document boundaries were checked too


def test_locate_cli_by_sample_doc_id_origin_and_shard(built, stream, capsys):
    manifest, train = stream
    path = str(built["manifest"])
    assert main(["locate", path, "--sample", "7", "--seq-len", "64", "--samples", "600", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["sample"] == 7 and answer["stream"]["seq_length"] == 64 and answer["stream"]["seed"] == 1234
    assert answer["documents"] == locate_samples(manifest, train, [7])[0]["documents"]
    first = answer["documents"][0]
    assert {"doc_id", "source", "url", "origin", "text", "token_range"} <= set(first)

    whole = {**first, "token_range": [0, first["tokens"]]}
    for query in (["--doc-id", first["doc_id"]], ["--origin", first["origin"]],
                  ["--shard", first["shard"], "--doc", str(first["doc"])]):
        assert main(["locate", path, *query, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["documents"] == [whole], query

    assert main(["locate", path, "--sample", "7", "--seq-len", "64", "--samples", "600"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sample 7 of train (seq 64, seed 1234, a stream of")
    assert f"doc_id {first['doc_id']}  origin {first['origin']}" in out
    assert f"{first['shard']} doc {first['doc']}  tokens {first['token_range'][0]}-" in out
    assert main(["locate", path, "--origin", "no-such-file.warc.gz@0"]) == 1
    assert "not in the shards" in capsys.readouterr().out
    assert main(["locate", path, "--sample", "10000000", "--seq-len", "64", "--samples", "600"]) == 2


# -- reader and preview ----------------------------------------------------------------------------------


class _EodOnly:
    """What megatron's GPT datasets ask of a tokenizer, straight from the manifest's JSON."""

    def __init__(self, tokenizer: dict) -> None:
        self.vocab_size, self.eod = tokenizer["vocab_size"], tokenizer["eod_id"]
        self.unique_identifiers = {"class": "EodOnly", "sha256": tokenizer["sha256"]}


def test_reader_datasets_equal_megatrons_own_blend_of_the_manifest(built, tmp_path):
    manifest = load_manifest(built["manifest"])
    train, valid = build_gpt_datasets(manifest, seq_length=64, num_samples={"train": 600, "valid": 20}, seed=1234,
                                      cache_dir=tmp_path / "ours")
    assert isinstance(train, BlendedDataset) and isinstance(valid, BlendedDataset)
    assert len(train) >= 600 and len(valid) >= 20

    # megatron's own classes, fed the manifest's JSON (absolute prefixes), not our reader
    raw = json.loads(built["manifest"].read_text())
    blends = [None if b is None else ([str(built["one"] / p) for p in b[0]], b[1]) for b in raw["blend_per_split"]]
    config = GPTDatasetConfig(random_seed=1234, sequence_length=64, blend_per_split=blends,
                              path_to_cache=str(tmp_path / "theirs"), tokenizer=_EodOnly(raw["tokenizer"]),
                              reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False)
    # megatron's BlendedDataset asks torch.distributed for the rank when it caches: a one-process group
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    try:
        theirs, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [600, 20, None], lambda: True, config).build()
    finally:
        torch.distributed.destroy_process_group()
    assert len(theirs) == len(train)
    for i in range(0, len(train), 7):
        ours_item, their_item = train[i], theirs[i]
        assert ours_item["tokens"].shape == (64,)
        assert ours_item["tokens"].tolist() == their_item["tokens"].tolist()
        assert ours_item["labels"].tolist() == their_item["labels"].tolist()
        assert ours_item["tokens"][1:].tolist() == ours_item["labels"][:-1].tolist()

    # the blend is our error-tracking order; the sources get their weights
    np.testing.assert_array_equal(train.dataset_index, blending_indices(normalize(normalize(blends[0][1])), len(train))[0])
    source_of = np.array([list(WEIGHTS).index(p.split("/")[0]) for p in raw["blend_per_split"][0][0]])
    drawn = np.bincount(source_of[train.dataset_index], minlength=3)
    shards = np.bincount(source_of, minlength=3)
    assert np.all(np.abs(drawn - np.array(list(WEIGHTS.values())) * len(train)) <= shards)


def test_preview_reports_the_mixture_and_epochs(built, capsys):
    manifest = load_manifest(built["manifest"])
    report = preview(manifest, samples=2000, seq_length=64)
    for row in report.rows:
        assert abs(row.share - WEIGHTS[row.name]) <= 1 / 2000
        assert row.epochs == pytest.approx(WEIGHTS[row.name] * 2000 * 64 / manifest.sources[row.name].tokens("train"))
    # megatron blends shards: each shard stays within one sample of its target, so a source within as
    # many samples as it has shards
    most_shards = max(len(source.train) for source in manifest.sources.values())
    assert report.max_prefix_deviation <= most_shards / report.skip
    assert main(["preview", str(built["manifest"]), "--samples", "2000", "--seq-len", "64"]) == 0
    out = capsys.readouterr().out
    assert "Realised mixture" in out and "Table-1 summary" in out and all(name in out for name in WEIGHTS)


def test_the_passes_without_spark_write_the_same_shards(built, corpus, tmp_path):
    """The per-document functions alone, in one process and one run file, give the Spark build's bytes;
    the rows of a source the blend does not take are tallied, not tokenized."""
    import pyarrow.compute as pc

    from blending.passes import PartSlice, plan, read_meta, tokenize_parts, write_shard
    from blending.stage_folder import list_parts
    from blending.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(corpus["root"] / "tokenizer.json")
    (tmp_path / "runs").mkdir()
    parts = [PartSlice(p, "wiki", ("wikipedia",)) for p in list_parts(str(corpus["root"] / "wiki"))]
    parts += [PartSlice(p, "books", ("gutenberg",), k, 2) for p in list_parts(str(corpus["root"] / "books"))
              for k in range(2)]
    run = tokenize_parts(parts, tmp_path / "runs", tokenizer, 0, np.dtype(np.uint16),
                         {"wikipedia": 0, "gutenberg": 1}, VALID_FRACTION, "text")
    assert run.unclaimed == {("books", "poetry"): 7, ("books", "shakespeare"): len(corpus["docs"]["shakespeare"])}
    meta = read_meta([run])
    assert meta.num_rows == len(corpus["docs"]["wikipedia"]) + len(corpus["docs"]["gutenberg"])
    for shard in plan(meta.filter(pc.is_null(meta["drop"])), ["wikipedia"], SHARD_TOKENS):
        (tmp_path / "wikipedia").mkdir(exist_ok=True)
        write_shard(shard, tmp_path, tmp_path / "runs", np.dtype(np.uint16))
        for ext in (".bin", ".idx", ".docs.parquet"):
            assert (tmp_path / (shard.prefix + ext)).read_bytes() == (built["one"] / (shard.prefix + ext)).read_bytes()


# -- on the pipeline's output --------------------------------------------------------------------------------


def test_a_pipeline_run_folder_blends_its_last_stage_and_a_partial_one_is_refused(pipeline_run, tmp_path):
    from dataprep.pipeline import last_stage
    from dataprep.schema import DEFAULT_SOURCE

    raw = {"tokenizer": {"file": str(tmp_path / "tokenizer.json"), "train_vocab_size": 600},
           "shard_size_tokens": 1_000_000, "sources": [{"name": DEFAULT_SOURCE, "inputs": [str(pipeline_run)], "weight": 1}]}
    manifest = load_manifest(build(BlendConfig.from_dict(raw), tmp_path / "shards", master="local[2]"))
    last = json.loads((pipeline_run / last_stage() / "stats.json").read_text())
    source = manifest.sources[DEFAULT_SOURCE]
    assert source.documents("train") + source.documents("valid") == last["out"]["rows"] > 0

    raw["sources"][0]["inputs"] = [str(pipeline_run / "extract")]
    with pytest.raises(InputError, match="output of the extract stage.*--allow-partial"):
        build(BlendConfig.from_dict(raw), tmp_path / "partial")
    assert main(["build", "--config", str(_yaml(tmp_path, raw)), "--out", str(tmp_path / "partial")]) == 2
    assert not (tmp_path / "partial").exists()


def _yaml(tmp_path, raw: dict):
    import yaml

    path = tmp_path / "blend.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
