"""The decontamination stage on Spark: real LAMBADA and PIQA text injected into real documents (Common
Crawl pages, Frankenstein), each rule on a document built for it, a JSONL task, 1 and 8 partitions."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blending.evaltasks import load_task
from dataprep.config import DataprepConfig
from dataprep.decontaminate.tokens import words
from dataprep.framework.spark_folders import read_input_folders as read_stage_outputs
from dataprep.pipeline import run

TASKS = ["lambada", "piqa"]  # a small index: the stage's work is the same with every shipped task


def _config(buckets: int = 2) -> DataprepConfig:
    config = DataprepConfig()
    config.output.num_buckets = buckets
    return config


def ngrams(text: str, n: int = 13) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


@pytest.fixture(scope="module")
def corpus(fixtures):
    """(named documents, the task texts injected), each document built for one rule."""
    lambada = [i.texts[0] for i in load_task("lambada")]
    piqa = load_task("piqa")
    with gzip.open(fixtures / "text" / "dolma_cc_en_head-0091.jsonl.gz", "rt") as f:
        web = [json.loads(line)["text"] for line in f]
    raw = (fixtures / "prose" / "frankenstein_head.txt").read_text().replace("\r\n", "\n")
    paragraphs = [p.replace("\n", " ") for p in raw.split("\n\n") if 500 <= len(p) <= 1500]
    prose = iter(paragraphs)

    def around(text: str) -> str:
        return next(prose) + "\n" + text + "\n" + next(prose)

    docs = {f"web{i}": text for i, text in enumerate(web)}  # no task text: untouched
    middle = web[6].find(". ", len(web[6]) // 2) + 2
    docs["lambada_in_web"] = web[6][:middle] + lambada[11] + "\n" + web[6][middle:]
    # a PIQA goal (10 words: used whole) and a solution of more than 13 words
    docs["piqa_in_prose"] = around(piqa[2].texts[0]) + "\n" + around(piqa[0].texts[1])
    docs["ten_words"] = around(" ".join(lambada[3].split()[5:15]))  # no 13-gram of any task: untouched
    docs["eleven_cuts"] = next(prose) + "".join(f"\n{lambada[200 + i]}\n{next(prose)} {next(prose)}" for i in range(11))
    docs["all_task_text"] = lambada[12] + " " + paragraphs[0][:150]  # no piece of 200 characters
    for i in range(10):  # a passage in 10 documents: its 13-grams are common, exempt
        docs[f"frequent{i}"] = around(lambada[500])
    for i in range(9):  # in 9 documents: still a leak
        docs[f"nine{i}"] = around(lambada[501])
    return docs, {"lambada": [11, 12, *range(200, 211), 500, 501], "piqa": [0, 2]}


def _ingest(spark, docs: dict[str, str], folder: Path, buckets: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps({"text": text, "name": name}) + "\n" for name, text in docs.items())
    (folder / "docs.jsonl").write_text(lines)
    run("ingest", spark, [str(folder / "docs.jsonl")], str(folder / "in"), _config(buckets), source="cc",
        format="jsonl")


def _rows(folder: Path, dropped: bool = False) -> list[dict]:
    parts = sorted((folder / "dropped" if dropped else folder).glob("part-*.parquet"))
    return pa.concat_tables(pq.read_table(p) for p in parts).to_pylist()


def _partitions(spark, folder: Path) -> int:
    return read_stage_outputs(spark, [str(folder)]).documents.rdd.getNumPartitions()


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "_SUCCESS"}


# How Spark packs the input folder's 8 files into partitions: one file each, or all in one.
EIGHT_PARTITIONS = {"spark.sql.files.openCostInBytes": str(1 << 40)}
ONE_PARTITION = {"spark.sql.files.openCostInBytes": "0", "spark.sql.files.minPartitionNum": "1",
                 "spark.sql.files.maxPartitionBytes": str(1 << 40)}


@contextlib.contextmanager
def spark_conf(spark, conf: dict):
    before = {k: spark.conf.get(k, None) for k in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


@pytest.fixture(scope="module")
def decontaminated(spark, corpus, tmp_path_factory):
    """The stage on an input folder of 8 files, read as 8 partitions."""
    docs, _ = corpus
    root = tmp_path_factory.mktemp("decontaminate")
    _ingest(spark, docs, root, buckets=8)
    with spark_conf(spark, EIGHT_PARTITIONS):
        assert _partitions(spark, root / "in") == 8
        stats = run("decontaminate", spark, [str(root / "in")], str(root / "out"), _config(),
                    keep_dropped=True, task=TASKS)
    return root, stats


def test_every_rule_on_its_document(corpus, decontaminated):
    docs, injected = corpus
    root, stats = decontaminated
    inputs = {r["doc_id"]: r for r in _rows(root / "in")}
    name_of = {doc_id: docs_key for doc_id, r in inputs.items() for docs_key, text in docs.items() if r["text"] == text}
    assert stats.in_rows == len(docs) == stats.kept_rows + sum(stats.dropped.values())
    assert stats.dropped == {"contaminated": 1, "no_clean_piece": 1}
    kept = _rows(root / "out")
    dropped = {name_of[r["doc_id"]]: r for r in _rows(root / "out", dropped=True)}
    assert set(dropped) == {"eleven_cuts", "all_task_text"}
    assert dropped["eleven_cuts"]["drop_reason"] == "contaminated" and len(dropped["eleven_cuts"]["cuts"]) == 11

    whole = [r for r in kept if r["piece"] is None]
    pieces = [r for r in kept if r["piece"] is not None]
    # untouched documents are byte-identical to their input rows, new columns null
    untouched = {name_of[r["doc_id"]] for r in whole}
    assert untouched == {*(f"web{i}" for i in range(10)), "ten_words", *(f"frequent{i}" for i in range(10))}
    for r in whole:
        assert {k: r[k] for k in inputs[r["doc_id"]]} == inputs[r["doc_id"]]
        assert r["parent_doc_id"] is None and r["cuts"] is None
    # split documents: pieces with their parent's columns, a derived doc_id, the cuts
    parents = {name_of[r["parent_doc_id"]] for r in pieces}
    assert parents == {"lambada_in_web", "piqa_in_prose", *(f"nine{i}" for i in range(9))}
    for r in pieces:
        parent = inputs[r["parent_doc_id"]]
        assert r["doc_id"] == hashlib.sha1(f"{parent['doc_id']}\0{r['piece']}".encode()).hexdigest()[:16]
        assert (r["origin"], r["source"], r["url"]) == (parent["origin"], parent["source"], parent["url"])
        assert r["text"] in parent["text"] and len(r["text"]) >= 200
        for cut in r["cuts"]:
            assert cut["end"] - cut["start"] >= 400
    # every injected 13-gram is gone, but for the exempt passage (in 10 documents)
    lambada, piqa = load_task("lambada"), load_task("piqa")
    leaked = set().union(*(ngrams(lambada[i].texts[0]) for i in injected["lambada"] if i != 500))
    leaked |= ngrams(piqa[0].texts[1])
    for r in kept:
        assert not ngrams(r["text"]) & leaked, name_of.get(r["doc_id"]) or name_of[r["parent_doc_id"]]
    assert all(piqa[2].texts[0] not in r["text"] for r in kept)  # the 10-word goal, used whole

    extra = stats.extra
    assert extra["documents"] == {"untouched": 21, "split": 11, "contaminated": 1, "no_clean_piece": 1}
    assert extra["exempt_ngrams"] == len(ngrams(lambada[500].texts[0]))
    assert extra["pieces_kept"] == len(pieces) == stats.out_rows - len(whole)
    assert set(extra["matches_per_task"]) == set(TASKS) and extra["matches_per_task"]["piqa"] >= 2
    assert extra["index"]["tasks"]["lambada"]["ngrams"] == 253175


def test_found_items_are_listed(corpus, decontaminated):
    _, injected = corpus
    root, stats = decontaminated
    found = [json.loads(line) for line in (root / "out" / "task_items_found.jsonl").read_text().splitlines()]
    expected = [("lambada", i) for i in injected["lambada"] if i != 500] + [("piqa", i) for i in injected["piqa"]]
    assert [(f["task"], f["index"]) for f in found] == sorted(expected)
    assert next(f for f in found if f["index"] == 501 and f["task"] == "lambada")["documents"] == 9
    assert stats.extra["items_found_per_task"] == {"lambada": len(injected["lambada"]) - 1, "piqa": 2}
    assert (root / "out" / "task_index.npz").stat().st_size == stats.extra["index"]["bytes"]


def test_identical_output_with_1_and_8_partitions(spark, decontaminated):
    root, _ = decontaminated
    with spark_conf(spark, ONE_PARTITION):
        assert _partitions(spark, root / "in") == 1
        run("decontaminate", spark, [str(root / "in")], str(root / "out-one"), _config(), keep_dropped=True,
            task=TASKS)
    assert _digests(root / "out-one") == _digests(root / "out")


def test_a_jsonl_task_works_like_a_shipped_one(spark, corpus, decontaminated):
    _, injected = corpus
    root, shipped = decontaminated
    lambada = load_task("lambada")
    task = root / "mine.jsonl"
    task.write_text("".join(json.dumps({"id": i, "body": lambada[i].texts[0]}) + "\n" for i in injected["lambada"]))
    stats = run("decontaminate", spark, [str(root / "in")], str(root / "out-jsonl"), _config(),
                task=[f"mine={task}:body", "piqa"])
    # the same documents split and dropped, the same pieces: only the task's name differs
    assert stats.dropped == shipped.dropped and stats.extra["documents"] == shipped.extra["documents"]
    assert sorted(r["text"] for r in _rows(root / "out-jsonl")) == sorted(r["text"] for r in _rows(root / "out"))
    found = [json.loads(line) for line in (root / "out-jsonl" / "task_items_found.jsonl").read_text().splitlines()]
    positions = sorted(i for i in range(len(injected["lambada"])) if injected["lambada"][i] != 500)
    assert [(f["task"], f["index"]) for f in found if f["task"] == "mine"] == [("mine", p) for p in positions]


def test_the_pipeline_decontaminates_with_every_shipped_task(pipeline_run):
    from blending.evaltasks import shipped_tasks

    folder = pipeline_run / "decontaminate"
    stats = json.loads((folder / "stats.json").read_text())
    extra = stats["extra"]
    assert list(extra["index"]["tasks"]) == shipped_tasks() and extra["index"]["ngrams"] > 1_000_000
    assert sum(extra["documents"].values()) == stats["in"]["rows"] > 0
    found = (folder / "task_items_found.jsonl").read_text().splitlines()
    assert len(found) == sum(extra["items_found_per_task"].values())


@pytest.mark.slow
def test_the_sample_crawls_leaked_pages_are_found_and_their_fragments_kept(spark, default_classifier, tmp_path):
    """Pages that quote benchmark items (samplecrawl/leaks.py) through the whole pipeline: every quote of 13
    words or more that reached the stage is cut out and its items listed, exactly; every shorter fragment
    stays in its page, untouched."""
    from dataprep.pipeline import SourceSpec, run_pipeline
    from dataprep.schema import DEFAULT_SOURCE
    from samplecrawl import build_sample_crawl
    from samplecrawl.config import CrawlMix, SampleCrawlConfig
    from tests.helpers import PIPELINE_OPTIONS, pipeline_run_config

    none = dict.fromkeys(("recrawl", "near_duplicate", "non_english", "legacy_charset", "short",
                          "javascript_notice", "non_html", "revisit"), 0.0)
    crawl_config = SampleCrawlConfig(mix=CrawlMix(clean=0.4, leaked=0.6, **none))
    truth = build_sample_crawl(tmp_path / "crawl", 300, 1, seed=2, config=crawl_config)
    source = SourceSpec(DEFAULT_SOURCE, "extract", [str(tmp_path / "crawl" / "*.warc.gz")])
    run_pipeline(spark, [source], str(tmp_path / "run"), pipeline_run_config(), PIPELINE_OPTIONS,
                 log=lambda *_: None)

    def rows(stage: str) -> list[dict]:
        return pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "run" / stage).glob("part-*.parquet"))
                                ).to_pylist()

    def contains(haystack: list[str], needle: list[str]) -> bool:
        return any(haystack[i : i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))

    arrived = {row["origin"]: words(row["text"]) for row in rows("dedup")}  # what the stage read
    pieces: dict[str, list[dict]] = {}
    for row in rows("decontaminate"):
        pieces.setdefault(row["origin"], []).append(row)
    # A quote reached the stage when extraction kept its paragraph (jusText drops some as boilerplate).
    leaks = [r for r in truth["records"] if "leak" in r and contains(arrived.get(r["origin"], []), words(r["leak"]["text"]))]
    quotes = [r for r in leaks if r["leak"]["found"]]
    fragments = [r for r in leaks if not r["leak"]["found"]]
    assert len(quotes) >= 20 and len(fragments) >= 10
    for r in quotes:
        assert pieces[r["origin"]][0]["cuts"], r["leak"]  # split
        assert not any(ngrams(p["text"]) & ngrams(r["leak"]["text"]) for p in pieces[r["origin"]]), r["leak"]
    for r in fragments:
        (piece,) = pieces[r["origin"]]
        assert piece["cuts"] is None and contains(words(piece["text"]), words(r["leak"]["text"])), r["leak"]

    # The items listed are exactly those that share a 13-gram with a quote, or whose text of 8 to 12 words
    # a quote holds whole (HellaSwag's items share their contexts: one quote finds several).
    listed = {(f["task"], f["split"], f["index"]) for f in
              map(json.loads, (tmp_path / "run" / "decontaminate" / "task_items_found.jsonl").read_text().splitlines())}
    expected = set()
    for task in {r["leak"]["task"] for r in quotes}:
        quoted = [words(r["leak"]["text"]) for r in quotes if r["leak"]["task"] == task]
        grams = set().union(*(ngrams(r["leak"]["text"]) for r in quotes if r["leak"]["task"] == task))
        for item in load_task(task):
            for text in map(words, item.texts):
                if (len(text) >= 13 and ngrams(" ".join(text)) & grams) or (
                        8 <= len(text) < 13 and any(contains(q, text) for q in quoted)):
                    expected.add((task, item.split, item.index))
    assert listed == expected and {(r["leak"]["task"], r["leak"]["split"], r["leak"]["index"]) for r in quotes} <= listed
