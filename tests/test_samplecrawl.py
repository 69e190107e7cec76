"""The sample-crawl builder: exact record counts and proportions, byte-identical output for a seed
whatever the number of processes, WARC files that warcio and fastwarc read with every digest verified,
realistic pages, and a truth.json that matches what is in the files."""

from __future__ import annotations

import collections
import gzip
import hashlib
import html
import json
import re
import zlib
from pathlib import Path

import justext
import pycld2
import pytest
from fastwarc.warc import ArchiveIterator as FastIterator
from fastwarc.warc import WarcRecordType
from warcio.archiveiterator import ArchiveIterator as WarcioIterator

from samplecrawl import (
    DEFAULT_MATERIAL,
    CrawlMix,
    SampleCrawlConfig,
    build_sample_crawl,
    content_text,
    load_material,
    load_truth,
)
from samplecrawl.__main__ import main
from samplecrawl.plan import JAVASCRIPT_NOTICES, MAX_ACCIDENTAL_OVERLAP, largest_remainder, page_count
from samplecrawl.render import jaccard

FULL_PAGE_CATEGORIES = {"clean", "leaked", "recrawl", "near_duplicate", "non_english", "legacy_charset", "truncated"}


@pytest.fixture(scope="module")
def material():
    return load_material()


@pytest.fixture(scope="module")
def crawl(tmp_path_factory, material):
    """The 10,000-record crawl, built once, with two processes."""
    out = tmp_path_factory.mktemp("samplecrawl") / "crawl"
    truth = build_sample_crawl(out, 10_000, 4, seed=11, material=material, workers=2)
    return out, truth


@pytest.fixture(scope="module")
def small(tmp_path_factory, material):
    out = tmp_path_factory.mktemp("samplecrawl") / "small"
    truth = build_sample_crawl(out, 900, 3, seed=5, material=material)
    return out, truth


def responses(truth):
    return [r for r in truth["records"] if r["type"] in ("response", "revisit")]


def read_payloads(out: Path, truth, predicate):
    """(truth entry, HTTP headers dict, payload bytes) of the response records the predicate selects."""
    wanted = {(r["file"], r["offset"]): r for r in truth["records"] if r["type"] == "response" and predicate(r)}
    for path in sorted(out.glob("*.warc.gz")):
        for record in FastIterator(open(path, "rb"), record_types=WarcRecordType.response):
            entry = wanted.get((path.name, record.stream_pos))
            if entry is not None and entry["category"] != "truncated":
                yield entry, dict(record.http_headers.items()), record.reader.read()


# counts and proportions -----------------------------------------------------------------------------
def test_page_count_makes_the_record_count_exact():
    for files in (1, 3, 7):
        for records in range(files + 3 * 40, files + 3 * 40 + 9):
            pages, without_metadata = page_count(records, files)
            assert 0 <= without_metadata <= 2
            assert files + 3 * pages - 1 - without_metadata == records


def test_exact_record_count_and_layout(crawl):
    out, truth = crawl
    assert truth["record_count"] == 10_000 == len(truth["records"])
    paths = sorted(out.glob("*.warc.gz"))
    assert [p.name for p in paths] == [f["name"] for f in truth["files"]]
    total = 0
    for path, listed in zip(paths, truth["files"]):
        types = [str(r.record_type) for r in FastIterator(open(path, "rb"), parse_http=False)]
        assert types[0] == "warcinfo" and types.count("warcinfo") == 1
        assert len(types) == listed["records"]
        assert listed["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        total += len(types)
    assert total == 10_000


def test_stated_proportions(crawl):
    _, truth = crawl
    mix = CrawlMix()
    pages = truth["pages"]
    expected = largest_remainder(pages, mix.__dict__)
    expected["clean"] -= 1
    expected["truncated"] = 1
    assert truth["counts"]["pages_by_category"] == dict(sorted(expected.items()))
    for category, share in mix.__dict__.items():
        assert abs(truth["counts"]["pages_by_category"][category] / pages - share) < 0.002
    by_type = truth["counts"]["records_by_type"]
    assert by_type["revisit"] == expected["revisit"]
    assert by_type["request"] == pages
    assert by_type["metadata"] >= pages - 3
    edit_rates = collections.Counter(r["edit_rate"] for r in responses(truth) if r["category"] == "near_duplicate")
    assert set(edit_rates) == set(SampleCrawlConfig().near_duplicate_edit_rates)
    assert max(edit_rates.values()) - min(edit_rates.values()) <= 1
    languages = collections.Counter(r["language"] for r in responses(truth) if r["category"] == "non_english")
    assert len(languages) >= 4 and "en" not in languages


def test_the_files_hold_what_truth_counts(crawl):
    """Revisits, non-HTML responses and re-fetched URLs, counted from the WARC files themselves."""
    out, truth = crawl
    revisits, non_html, payloads_by_url = 0, 0, collections.defaultdict(list)
    for path in sorted(out.glob("*.warc.gz")):
        for record in FastIterator(open(path, "rb"), record_types=WarcRecordType.response | WarcRecordType.revisit):
            if record.record_type == WarcRecordType.revisit:
                revisits += 1
                assert record.headers["WARC-Profile"].endswith("/revisit/server-not-modified")
                continue
            if not record.http_content_type.startswith("text/html"):
                non_html += 1
            payloads_by_url[record.headers["WARC-Target-URI"]].append(record.headers["WARC-Payload-Digest"])
    categories = truth["counts"]["pages_by_category"]
    assert revisits == categories["revisit"]
    assert non_html == categories["non_html"]
    refetched = sum(len(d) - 1 for d in payloads_by_url.values() if len(d) > 1)
    assert refetched == categories["recrawl"]
    assert all(len(set(d)) == 1 for d in payloads_by_url.values())  # a re-fetch has the identical payload


# valid WARC -------------------------------------------------------------------------------------------
def test_fastwarc_verifies_every_digest(crawl):
    out, truth = crawl
    truncated = {(r["file"], r["offset"]) for r in truth["records"] if r.get("category") == "truncated"}
    checked = 0
    for path in sorted(out.glob("*.warc.gz")):
        for record in FastIterator(open(path, "rb"), parse_http=False):
            intact = (path.name, record.stream_pos) not in truncated
            assert record.verify_block_digest() == intact, (path.name, record.stream_pos)
            checked += 1
        for record in FastIterator(open(path, "rb"), record_types=WarcRecordType.response):
            intact = (path.name, record.stream_pos) not in truncated
            assert record.verify_payload_digest() == intact
    assert checked == 10_000


def test_warcio_reads_every_record_and_digests_pass(small):
    out, truth = small
    truncated = next(r for r in truth["records"] if r.get("category") == "truncated")
    seen = []
    for path in sorted(out.glob("*.warc.gz")):
        with open(path, "rb") as handle:
            iterator = WarcioIterator(handle, check_digests="raise")
            for record in iterator:
                content = record.content_stream().read()
                offset = iterator.get_record_offset()
                seen.append((path.name, offset, record.rec_type))
                if (path.name, offset) == (truncated["file"], truncated["offset"]):
                    assert len(content) < truncated["payload_bytes"]
                elif record.rec_type == "revisit":  # warcio leaves revisits unchecked; fastwarc checks them
                    assert record.digest_checker.passed is None and record.http_headers.statusline == "304 Not Modified"
                else:
                    assert record.digest_checker.passed is True, (path.name, offset)
    assert seen == [(r["file"], r["offset"], r["type"]) for r in truth["records"]]


def test_the_truncated_record_is_clipped_at_the_end_of_the_last_file(crawl):
    out, truth = crawl
    entry = next(r for r in truth["records"] if r.get("category") == "truncated")
    assert entry is truth["records"][-1] and entry["file"] == truth["files"][-1]["name"]
    assert entry["expected"] == "truncated_record" and entry["stage"] == "extract"
    data = (out / entry["file"]).read_bytes()
    assert len(data) == entry["offset"] + entry["length"]
    inflater = zlib.decompressobj(31)
    partial = inflater.decompress(data[entry["offset"] :])
    assert not inflater.eof  # the gzip member never ends
    declared = int(re.search(rb"Content-Length: (\d+)", partial).group(1))
    assert len(partial.split(b"\r\n\r\n", 1)[1]) < declared
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(data[entry["offset"] :])


# determinism ------------------------------------------------------------------------------------------
def test_byte_identical_for_a_seed_whatever_the_processes(material, tmp_path, small):
    small_out, _ = small
    again = build_sample_crawl(tmp_path / "again", 900, 3, seed=5, material=material, workers=3)
    for path in sorted(small_out.iterdir()):
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name
    other = build_sample_crawl(tmp_path / "other", 900, 3, seed=6, material=material)
    assert other["files"][0]["sha256"] != again["files"][0]["sha256"]


def test_material_is_the_bundled_copy_and_is_hashed(small, material):
    _, truth = small
    assert material.root == DEFAULT_MATERIAL
    assert truth["material"]["sha256"] == material.sha256
    listed = truth["material"]["files"]
    assert all((DEFAULT_MATERIAL / name).is_file() for name in listed)
    assert any(name.startswith("html/aeb_html/") for name in listed) and any("warc/" in n for n in listed)
    assert truth["material"]["templates"]["en"] >= 10
    assert sum(v for k, v in truth["material"]["paragraphs"].items() if k.startswith("en/")) >= 3_000


# realistic pages --------------------------------------------------------------------------------------
def test_realistic_sizes_and_variety(crawl, material):
    _, truth = crawl
    full = [r for r in responses(truth) if r["category"] in FULL_PAGE_CATEGORIES]
    sizes = sorted(r["payload_bytes"] for r in full)
    assert 10_000 <= sizes[0] and sizes[-1] <= 60_000
    assert 15_000 <= sizes[len(sizes) // 2] <= 50_000
    clean = [r for r in full if r["category"] == "clean"]
    assert len({r["template"] for r in clean}) >= 10
    assert len({r["content"]["sha1"] for r in clean}) == len(clean)  # no page repeats another
    # no accidental near-duplicates: English pages that share paragraphs without truth saying that one
    # copies the other stay far below dedup's Jaccard threshold
    english = {r["page"]: r for r in full if r["language"] == "en"}
    group = {p: r.get("duplicate_of", {}).get("page", p) for p, r in english.items()}
    users = collections.defaultdict(set)
    for r in english.values():
        for paragraph in r["content"]["paragraphs"]:
            users[(r["content"]["source"], paragraph)].add(r["page"])
    shared = collections.defaultdict(set)
    for (_, paragraph), pages in users.items():
        for a in pages:
            for b in pages:
                if a < b and group[a] != group[b]:
                    shared[a, b].add(paragraph)

    def chars(page, paragraphs):
        return sum(len(material.pools[english[page]["content"]["source"]].texts[i]) for i in paragraphs)

    total = {page: chars(page, r["content"]["paragraphs"]) for page, r in english.items()}
    for (a, b), common in shared.items():
        both = chars(a, common)
        assert both / (total[a] + total[b] - both) < MAX_ACCIDENTAL_OVERLAP, (a, b)  # share of text in common


def test_pages_carry_what_truth_says(small, material):
    out, truth = small
    checked = collections.Counter()
    for entry, headers, body in read_payloads(out, truth, lambda r: r["content_type"] == "text/html"):
        category = entry["category"]
        charset = entry["charset"]
        declared = entry["charset_declared"]
        content_type = headers["Content-Type"]
        assert (f"charset={charset}" in content_type) == (declared in ("both", "header"))
        head = body[:4096].decode("ascii", "replace")
        assert (f"charset={charset}" in head or f'charset="{charset}"' in head) == (declared in ("both", "meta"))
        page = body.decode(charset)
        assert re.search(rf'<html[^>]* lang="{entry["language"]}"', page)
        if category == "javascript_notice":
            assert html.escape(JAVASCRIPT_NOTICES[entry["notice"]], quote=False) in page
        else:
            pool = material.pools[entry["content"]["source"]]
            texts = [pool.texts[i] for i in entry["content"]["paragraphs"]]
            if category == "leaked":
                assert content_text(entry, material, truth["seed"])  # the article with its quote, rebuilt
            elif category != "near_duplicate":
                text = "\n".join(texts)
                assert hashlib.sha1(text.encode()).hexdigest() == entry["content"]["sha1"]
                for paragraph in texts:
                    assert html.escape(paragraph, quote=False) in html.unescape(page) or paragraph in html.unescape(
                        page
                    )
            if category in ("non_english", "legacy_charset") and entry["language"] != "en":
                reliable, _, details = pycld2.detect("\n".join(texts))
                assert details[0][1] == entry["language"]
                assert entry["expected"] == "non_english"
        checked[category] += 1
    assert set(checked) >= {"clean", "short", "javascript_notice", "non_english", "legacy_charset", "near_duplicate"}


def test_near_duplicates_have_the_stated_edit_rate(crawl, material):
    _, truth = crawl
    config = SampleCrawlConfig()
    by_page = {r["page"]: r for r in responses(truth)}
    near = [r for r in responses(truth) if r["category"] == "near_duplicate"]
    for r in near:
        original = by_page[r["duplicate_of"]["page"]]
        assert original["category"] == "clean" and original["page"] < r["page"]
        assert r["duplicate_of"]["origin"] == original["origin"]
        assert r["url"] != original["url"] and r["template"] != original["template"]
        words = original["content"]["chars"] / 6
        assert abs(r["edits"] - r["edit_rate"] * words) <= 4 * (r["edit_rate"] * words) ** 0.5 + 3
        assert (r["expected"] == "near_duplicate") == (r["jaccard"] >= config.jaccard_threshold)
    # higher edit rates give lower similarity, on both sides of the dedup threshold
    mean = {
        rate: sum(r["jaccard"] for r in near if r["edit_rate"] == rate) / sum(r["edit_rate"] == rate for r in near)
        for rate in config.near_duplicate_edit_rates
    }
    rates = sorted(mean)
    assert mean[0.0] == 1.0 and all(mean[a] > mean[b] for a, b in zip(rates, rates[1:]))
    assert mean[rates[-1]] < config.jaccard_threshold < mean[rates[1]]


def test_content_text_rebuilds_every_page_text_edits_included(small, material):
    out, _ = small
    truth = load_truth(out / "truth.json")
    near = 0
    for entry, _, body in read_payloads(out, truth, lambda r: "content" in r and r["content_type"] == "text/html"):
        text = content_text(entry, material, truth["seed"])
        page = html.unescape(body.decode(entry["charset"]))
        assert all(paragraph in page for paragraph in text.split("\n"))
        if entry["category"] == "near_duplicate":
            pool = material.pools[entry["content"]["source"]]
            original = "\n".join(pool.texts[i] for i in entry["content"]["paragraphs"])
            assert jaccard(original, text, 5) == pytest.approx(entry["jaccard"], abs=1e-4)
            near += 1
    assert near > 0
    with pytest.raises(ValueError, match="does not rebuild"):
        edited = next(r for r in truth["records"] if r.get("category") == "near_duplicate" and r["edits"])
        content_text(edited, material, seed=truth["seed"] + 1)


def test_justext_extraction_agrees_with_expected_outcomes(small):
    """What the extract stage's extractor keeps matches truth: articles stay over 512 characters, short
    pages under it, notices under 256 characters with "javascript" in them."""
    out, truth = small
    stoplist = justext.get_stoplist("English")
    lengths = collections.defaultdict(list)
    for entry, _, body in read_payloads(
        out, truth, lambda r: r["content_type"] == "text/html" and r["language"] == "en"
    ):
        if len(lengths[entry["category"]]) >= 60:
            continue
        paragraphs = justext.justext(body, stoplist, encoding=entry["charset"].lower())
        text = "\n".join(p.text for p in paragraphs if not p.is_boilerplate)
        lengths[entry["category"]].append(text)
    assert lengths["clean"] and all(len(t) >= 512 for t in lengths["clean"] + lengths["recrawl"])
    assert all(len(t) < 512 for t in lengths["short"])
    assert sum(len(t) > 0 for t in lengths["short"]) >= 0.8 * len(lengths["short"])
    assert all(len(t) < 256 and "javascript" in t.lower() for t in lengths["javascript_notice"])


def test_non_html_bodies_are_what_they_say(small):
    out, truth = small
    seen = set()
    for entry, headers, body in read_payloads(out, truth, lambda r: r["category"] == "non_html"):
        kind = entry["content_type"]
        assert headers["Content-Type"].startswith(kind)
        if kind == "application/pdf":
            assert body.startswith(b"%PDF-1.4") and body.rstrip().endswith(b"%%EOF")
            xref = int(body.rsplit(b"startxref", 1)[1].split()[0])
            assert body[xref:].startswith(b"xref")
        elif kind == "image/png":
            assert body.startswith(b"\x89PNG\r\n\x1a\n") and body.endswith(b"IEND\xaeB`\x82")
        elif kind == "application/json":
            assert json.loads(body)["paragraphs"]
        elif kind == "application/rss+xml":
            assert body.startswith(b"<?xml") and b"<rss" in body
        assert entry["expected"] == "not_html"
        seen.add(kind)
    assert len(seen) >= 3


def test_every_record_has_an_expected_outcome(crawl):
    _, truth = crawl
    reasons = {
        "keep",
        "not_response",
        "not_html",
        "truncated_record",
        "non_english",
        "javascript_notice",
        "too_short",
        "exact_duplicate",
        "near_duplicate",
    }
    for r in truth["records"]:
        assert r["expected"] in reasons
        assert r["origin"] == f"{r['file']}@{r['offset']}"
        if r["type"] in ("request", "metadata", "warcinfo", "revisit"):
            assert r["expected"] == "not_response"
    kept = [r for r in truth["records"] if r["expected"] == "keep"]
    assert {r["category"] for r in kept} <= {"clean", "leaked", "legacy_charset", "near_duplicate"}
    assert sum(truth["counts"]["records_by_expected"].values()) == 10_000


# interface --------------------------------------------------------------------------------------------
def test_cli_builds_a_crawl(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cli"), "--records", "200", "--files", "2", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert summary["records"] == 200 and summary["files"] == 2
    truth = json.loads((tmp_path / "cli" / "truth.json").read_text())
    assert len(truth["records"]) == 200 and len(list((tmp_path / "cli").glob("*.warc.gz"))) == 2


def test_bad_requests_get_clear_errors(material, tmp_path):
    with pytest.raises(ValueError, match="too few"):
        build_sample_crawl(tmp_path / "tiny", 20, 2, seed=0, material=material)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        build_sample_crawl(tmp_path / "full", 200, 1, seed=0, material=material)
    with pytest.raises(ValueError, match="add up to 1"):
        CrawlMix(clean=0.9)
    with pytest.raises(FileNotFoundError):
        load_material(tmp_path / "missing")


def test_no_service_imports_the_generator():
    # samplecrawl is a tool beside the services: it may import dataprep, never the other way round.
    import ast

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in sorted(p for package in ("dataprep", "blending", "trainer") for p in (root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] == "samplecrawl"]
    assert offenders == []


# leaked benchmark text ---------------------------------------------------------------------------------
def test_leaked_pages_quote_task_items_whole_or_in_fragments(crawl):
    import html

    from blending.evaltasks import load_task
    from dataprep.decontaminate.tokens import words

    out, truth = crawl
    leaked = [r for r in truth["records"] if r.get("category") == "leaked"]
    assert len(leaked) == truth["counts"]["pages_by_category"]["leaked"] > 100
    kinds = {(r["leak"]["found"], r["leak"]["style"]) for r in leaked}
    assert kinds == {(f, s) for f in (True, False) for s in ("quiz", "forum", "study_guide")}
    items = {task: load_task(task) for task in {r["leak"]["task"] for r in leaked}}
    for entry, _, body in read_payloads(out, truth, lambda r: r.get("category") == "leaked"):
        leak = entry["leak"]
        assert leak["index"] < 500 and leak["words"] == len(words(leak["text"]))
        item = items[leak["task"]][leak["index"]]
        source = next(t for t in item.texts if leak["text"] in t)  # a whole text of the item, or a piece of one
        assert (leak["words"] >= 13) == leak["found"] and (source == leak["text"]) == leak["found"]
        assert html.escape(leak["text"], quote=False) in body.decode("utf-8")
