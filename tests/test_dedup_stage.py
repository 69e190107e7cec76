"""The dedup stage on a sample crawl with planted near-duplicate groups (the builder's truth), and on
ingested documents for source priority and templated pages: precision, recall against the LSH curve,
no lost group, representatives that are never dropped, identical output for any partitioning, and
`--against` equal to deduplicating both at once."""

from __future__ import annotations

import glob
import hashlib
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataprep.cli import stage_parser
from dataprep.config import DataprepConfig
from dataprep.dedup.evaluate import Document, evaluate, truth_groups
from dataprep.dedup.frames import CLUSTER_ID, DUPLICATE_OF, deduplicate, with_assignments
from dataprep.dedup.stage import DedupStage
from dataprep.extract.stage import ExtractStage
from dataprep.pipeline import run
from dataprep.schema import doc_id
from samplecrawl import CrawlMix, SampleCrawlConfig, build_sample_crawl

FIXTURES = Path(__file__).parent / "fixtures"
# Pages whose fate is dedup's: originals, their recrawls and edited copies on other sites (edit rates
# 0 to 10%: Jaccard from 1 down to ~0.4), and short pages (documents of few shingles).
MIX = CrawlMix(clean=0.6, leaked=0.0, recrawl=0.06, near_duplicate=0.3, non_english=0.0, legacy_charset=0.0, short=0.04,
               javascript_notice=0.0, non_html=0.0, revisit=0.0)
RECORDS, FILES = 900, 4


def _config(**dedup) -> DataprepConfig:
    config = DataprepConfig()
    config.output.num_buckets = 3
    for key, value in dedup.items():
        setattr(config.dedup, key, value)
    return config


def _rows(folder: Path) -> list[dict]:
    files = sorted(glob.glob(f"{folder}/part-*.parquet")) + sorted(glob.glob(f"{folder}/dropped/part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default").to_pylist()


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def crawl(spark, tmp_path_factory):
    """The crawl's first two files extracted into one folder (the earlier snapshot), the last two into
    another; and its truth."""
    root = tmp_path_factory.mktemp("dedup")
    truth = build_sample_crawl(root / "crawl", RECORDS, FILES, seed=12, config=SampleCrawlConfig(mix=MIX))
    files = sorted(str(p) for p in (root / "crawl").glob("*.warc.gz"))
    halves = []
    for name, part in (("early", files[:2]), ("late", files[2:])):
        run(ExtractStage, spark, part, str(root / name), _config(), source="common-crawl")
        halves.append(root / name)
    return root, halves, truth


@pytest.fixture(scope="module")
def deduped(spark, crawl):
    root, halves, _ = crawl
    out = root / "dedup-8"
    stats = run(DedupStage, spark, [str(h) for h in halves], str(out), _config(partitions=8), keep_dropped=True)
    return out, stats


def test_near_duplicate_groups_of_the_truth(crawl, deduped):
    _, _, truth = crawl
    out, stats = deduped
    rows = _rows(out)
    result = evaluate([Document(r["doc_id"], r["origin"], r["text"], r["drop_reason"], r[DUPLICATE_OF]) for r in rows],
                      truth_groups(truth))
    summary = result.summary()
    assert result.dropped >= 50 and result.high_pairs >= 15 and result.mid_pairs >= 15, summary
    assert result.precision >= 0.99, (summary, result.wrongly_dropped)
    assert result.recall_high >= 0.99, (summary, result.missed_high)
    # 0.8-0.9: what LSH finds is a draw per pair; at least the curve's expectation, less two standard
    # deviations of a sample of this size (bench/dedup_quality.py measures it on a large crawl)
    assert result.mid_found >= result.mid_expected - 2 * result.mid_variance**0.5, summary
    assert result.groups_lost == 0, summary
    # recrawls are the same URL: exact duplicates, found before any signature is compared
    assert stats.dropped["duplicate_url"] == truth["counts"]["pages_by_category"]["recrawl"]
    assert stats.in_rows == stats.kept_rows + sum(stats.dropped.values()) == len(rows)
    extra = stats.extra
    assert extra["verified_pairs"] <= extra["candidate_pairs"] and extra["verified_pairs"] >= stats.dropped["near_duplicate"]
    assert extra["clusters"] == sum(extra["cluster_sizes"].values())


def test_representatives_are_kept_and_never_chained(deduped):
    out, _ = deduped
    rows = {r["doc_id"]: r for r in _rows(out)}
    clusters: dict[str, list[dict]] = {}
    for r in rows.values():
        if r[CLUSTER_ID] is not None:
            clusters.setdefault(r[CLUSTER_ID], []).append(r)
        if r["drop_reason"] is None:
            assert r[DUPLICATE_OF] is None
        else:
            representative = rows[r[DUPLICATE_OF]]
            assert representative["drop_reason"] is None  # never a dropped document: no chains
            assert r[CLUSTER_ID] == r[DUPLICATE_OF]
    for rep_id, members in clusters.items():
        assert len(members) >= 2 and rows[rep_id][CLUSTER_ID] == rep_id
        best = min(members, key=lambda m: (m["origin"].rsplit("@", 1)[0], int(m["origin"].rsplit("@", 1)[1])))
        assert best["doc_id"] == rep_id  # one source: the earliest origin survives
    assert all(len(r["minhash"]) == 4 * 260 for r in rows.values())
    assert json.loads((out / "minhash.json").read_text())["num_perm"] == 260


@pytest.mark.slow  # Spark jobs beyond the shared ones: the stages run again to compare
def test_same_output_with_one_partition(spark, crawl, deduped):
    root, halves, _ = crawl
    out, _ = deduped
    again = root / "dedup-1"
    run(DedupStage, spark, [str(h) for h in halves], str(again), _config(partitions=1), keep_dropped=True)
    assert _digests(again) == _digests(out)
    assert json.loads((again / "stats.json").read_text()) == json.loads((out / "stats.json").read_text())


@pytest.mark.slow  # Spark jobs beyond the shared ones: the stages run again to compare
def test_against_an_earlier_output_equals_both_at_once(spark, crawl, deduped):
    root, (early, late), _ = crawl
    out, _ = deduped
    first, second = root / "early-dedup", root / "late-dedup"
    run(DedupStage, spark, [str(early)], str(first), _config(), keep_dropped=True)
    stats = run(DedupStage, spark, [str(late)], str(second), _config(), keep_dropped=True, against=[str(first)])
    together = {r["doc_id"]: (r["drop_reason"], r[DUPLICATE_OF]) for r in _rows(out)}
    apart = {r["doc_id"]: (r["drop_reason"], r[DUPLICATE_OF]) for r in _rows(first) + _rows(second)}
    assert apart == together
    assert stats.in_rows == len(_rows(second))  # the earlier documents are not written again
    late_ids = {r["doc_id"] for r in _rows(second)}
    assert any(dup not in late_ids for _, dup in apart.values() if dup and dup in together)  # late -> early links


def _wikipedia_article() -> str:
    text = (FIXTURES / "blending" / "wikitext2_valid_head.txt").read_text(encoding="utf-8")
    return next(a for a in text.split("\n = ") if len(a) > 6000)


def _paragraphs(path: Path, encoding: str) -> list[str]:
    text = path.read_text(encoding=encoding).replace("\r\n", "\n")
    return [p.replace("\n", " ") for p in text.split("\n\n") if len(p) > 300]


def test_priority_and_templated_pages(spark):
    """A Wikipedia article and its crawl copies (one verbatim, one with 1% of its words edited): the
    Wikipedia one survives whatever the origins. Pages of one site that share a long header and footer
    but not their body are candidates (with 4-row bands) that verification rejects: all survive."""
    article = _wikipedia_article()
    rng = random.Random(5)
    edited = " ".join(w if rng.random() > 0.01 else "lobster" for w in article.split(" "))
    header_footer = _paragraphs(FIXTURES / "blending" / "pride_and_prejudice_head.txt", "utf-8")
    bodies = _paragraphs(FIXTURES / "text" / "sherlock_holmes_head.txt", "iso-8859-1")
    header, footer = " ".join(header_footer[:3]), " ".join(header_footer[3:5])
    templated = [{"text": f"{header}\n{bodies[i]} {bodies[i + 1]}\n{footer}", "url": f"https://site.example/p/{i}"}
                 for i in range(0, 12, 2)]
    documents = [
        _document("common-crawl", "a-crawl.jsonl:0", article, "https://copy.example/lobster"),
        _document("common-crawl", "a-crawl.jsonl:1", edited, "https://other.example/lobster"),
        *[_document("common-crawl", f"a-crawl.jsonl:{2 + i}", page["text"], page["url"]) for i, page in enumerate(templated)],
        _document("wikipedia", "z-wiki.jsonl:0", article, "https://en.wikipedia.org/wiki/Lobster"),
    ]
    frame = spark.createDataFrame(pa.Table.from_pylist(documents).to_pandas())
    dedup = _config(rows_per_band=4).dedup
    result = deduplicate(frame, dedup, dedup.priority)
    rows = {r["origin"]: r.asDict() for r in with_assignments(frame, result.assignments).collect()}
    wiki = rows["z-wiki.jsonl:0"]
    assert wiki["drop_reason"] is None and wiki[CLUSTER_ID] == wiki["doc_id"]
    assert (rows["a-crawl.jsonl:0"]["drop_reason"], rows["a-crawl.jsonl:0"][DUPLICATE_OF]) == ("duplicate_text", wiki["doc_id"])
    assert (rows["a-crawl.jsonl:1"]["drop_reason"], rows["a-crawl.jsonl:1"][DUPLICATE_OF]) == ("near_duplicate", wiki["doc_id"])
    assert all(rows[f"a-crawl.jsonl:{i}"]["drop_reason"] is None for i in range(2, 2 + len(templated)))
    assert result.counts["candidate_pairs"] > result.counts["verified_pairs"] + 5

    # --priority on the command line puts the crawl first
    args = stage_parser(DedupStage).parse_args(["--input", "in", "--output", "out", "--priority", "common-crawl, wikipedia"])
    flipped = DedupStage.with_options(_config(), priority=args.priority)
    assert flipped.config.priority == ("common-crawl", "wikipedia")


def _document(source: str, origin: str, text: str, url: str) -> dict:
    return {"doc_id": doc_id(source, origin), "source": source, "url": url, "origin": origin, "lang": "en",
            "lang_score": 1.0, "text": text}


def test_the_pipeline_deduplicates_its_sample_crawl(pipeline_run, sample_crawl):
    """The shared pipeline run (extract -> cleanup -> dedup -> ...): every recrawl of a kept page is
    dropped as a duplicate URL, nothing is dropped wrongly, and the stage after dedup reads its output."""
    _, truth = sample_crawl
    folder = pipeline_run / "dedup"
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["in"]["rows"] == stats["kept"]["rows"] + sum(stats["dropped"].values())
    rows = _rows(folder)
    result = evaluate([Document(r["doc_id"], r["origin"], r["text"], r["drop_reason"], r[DUPLICATE_OF]) for r in rows],
                      truth_groups(truth))
    assert result.precision == 1.0 and result.groups_lost == 0 and result.recall_high == 1.0, result.summary()
    kept_origins = {r["origin"] for r in rows if r["drop_reason"] is None}
    recrawls = [r for r in truth["records"] if r["type"] == "response" and r.get("category") == "recrawl"
                and r["duplicate_of"]["origin"] in kept_origins]
    dropped = {r["origin"]: r["drop_reason"] for r in rows}
    assert recrawls and all(dropped[r["origin"]] == "duplicate_url" for r in recrawls)
    assert json.loads((pipeline_run / "decontaminate" / "stats.json").read_text())["in"]["rows"] == stats["out"]["rows"]
