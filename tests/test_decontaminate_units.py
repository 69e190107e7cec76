"""Decontamination without Spark: words and hashes, the task index, the matcher, and the cut / split /
drop rules, on real LAMBADA and PIQA items injected into real documents (Common Crawl, Frankenstein)."""

from __future__ import annotations

import gzip
import hashlib
import json
import re

import numpy as np
import pyarrow as pa
import pytest

from blending.evaltasks import load_task
from dataprep.decontaminate.cuts import cut_range, merge, pieces_between
from dataprep.decontaminate.index import TaskIndex, TaskSource, build_index, parse_task_args
from dataprep.decontaminate.matcher import CONTAMINATED, NO_CLEAN_PIECE, Matcher, decontaminate
from dataprep.decontaminate.tokens import text_hash, window_hashes, word_hashes, word_spans, words


@pytest.fixture(scope="module")
def items():
    return {"lambada": load_task("lambada"), "piqa": load_task("piqa")}


@pytest.fixture(scope="module")
def index(items):
    return build_index(items)


@pytest.fixture(scope="module")
def matcher(index):
    return Matcher(index)


@pytest.fixture(scope="module")
def web_documents(fixtures):
    with gzip.open(fixtures / "text" / "dolma_cc_en_head-0091.jsonl.gz", "rt") as f:
        return [json.loads(line)["text"] for line in f]


@pytest.fixture(scope="module")
def paragraphs(fixtures):
    """Frankenstein's paragraphs of 500-1500 characters (real prose with sentence ends)."""
    text = (fixtures / "prose" / "frankenstein_head.txt").read_text().replace("\r\n", "\n")
    return [p.replace("\n", " ") for p in text.split("\n\n") if 500 <= len(p) <= 1500]


def passage(items, i: int) -> str:
    return items["lambada"][i].texts[0]


def ngrams(text: str, n: int = 13) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def inject(document: str, text: str) -> tuple[str, int]:
    """The document with `text` inserted as its own paragraph after the sentence end nearest its middle."""
    middle = len(document) // 2
    at = document.find(". ", middle) + 2
    return document[:at] + text + "\n" + document[at:], at


# words and hashes


def test_words_are_lowercased_with_offsets_in_the_original_text():
    text = "Hello, WORLD! İstanbul's 3.5 km—naïve_case"
    assert words(text) == ["hello", "world", "i̇stanbul", "s", "3", "5", "km", "naïve_case"]
    spans = word_spans(text)
    assert [text[s:e] for s, e in spans] == ["Hello", "WORLD", "İstanbul", "s", "3", "5", "km", "naïve_case"]
    assert words("... !!") == []


def test_window_hashes_agree_with_whole_text_hashes_and_are_stable(items):
    w = words(passage(items, 0))
    windows = window_hashes(word_hashes(w), (8, 13))
    assert len(windows[13]) == len(w) - 12 and len(windows[8]) == len(w) - 7
    for i in (0, 5, len(w) - 13):
        assert int(windows[13][i]) == text_hash(w[i : i + 13])
    assert int(windows[8][3]) == text_hash(w[3:11])
    # Defined by the words alone: a saved index stays valid in every process (never Python's hash()).
    assert text_hash(words("the quick brown fox jumps over the lazy dog and then runs far away")) == 778306194488208962


# the index


def test_index_counts_per_task_and_round_trip(index, items, tmp_path):
    assert index.tasks == ["lambada", "piqa"]
    assert index.counts["lambada"] == {"items": 5153, "texts": 5153, "texts_ignored": 0, "texts_whole": 0,
                                       "ngrams": 253175}
    assert index.counts["piqa"] == {"items": 1838, "texts": 5514, "texts_ignored": 2041, "texts_whole": 1466,
                                    "ngrams": 24811}
    assert index.lengths == (8, 9, 10, 11, 12, 13)
    # every key's items really contain it
    w = words(passage(items, 7))
    owners = index.items_of(13, text_hash(w[:13]))
    assert [index.item(i) for i in owners] == [("lambada", "test", 7)]
    whole = items["piqa"][2].texts[0]  # "To fight Ivan Drago in Rocky for sega master system." (10 words)
    assert [index.item(i) for i in index.items_of(10, text_hash(words(whole)))] == [("piqa", "validation", 2)]
    assert len(index.items_of(13, text_hash(words("the quick brown fox jumps over the lazy dog and then runs far away")))) == 0

    size = index.save(tmp_path / "tasks.npz")
    assert size == (tmp_path / "tasks.npz").stat().st_size
    build_index(items).save(tmp_path / "again.npz")  # the same tasks give the same bytes
    assert (tmp_path / "again.npz").read_bytes() == (tmp_path / "tasks.npz").read_bytes()
    loaded = TaskIndex.load(tmp_path / "tasks.npz")
    assert loaded.counts == index.counts and loaded.vocabulary == index.vocabulary
    for n in index.keys:
        assert np.array_equal(loaded.keys[n], index.keys[n]) and np.array_equal(loaded.owners[n], index.owners[n])


def test_train_split_items_are_not_indexed():
    race = load_task("race")
    index = build_index({"race": race})
    assert index.counts["race"]["items"] == sum(1 for i in race if i.split != "train")
    train_article = next(i for i in race if i.split == "train").texts[0]
    assert not Matcher(index).matches(train_article)


def test_task_arguments():
    assert [s.name for s in parse_task_args(None)][:3] == ["lambada", "hellaswag", "piqa"]
    assert parse_task_args(["mine=data/x.jsonl:body", "lambada"]) == [
        TaskSource("mine", "data/x.jsonl", "body"), TaskSource("lambada")]
    assert parse_task_args(["piqa=s3://bucket/piqa.jsonl"]) == [TaskSource("piqa", "s3://bucket/piqa.jsonl", None)]
    both = parse_task_args(["mine=x.jsonl", "shipped"])
    assert both[0] == TaskSource("mine", "x.jsonl") and len(both) == 15
    with pytest.raises(ValueError, match="twice"):
        parse_task_args(["shipped", "piqa"])
    with pytest.raises(ValueError, match="not a shipped task"):
        parse_task_args(["squad"])


# the cut rules on cases built for each


def test_cut_takes_200_characters_then_extends_to_sentence_ends():
    head = "First sentence. Second one ends here. "
    filler = "no sentence end in these words " * 10  # 310 characters
    text = head + filler + "MATCH" + filler + "tail without an end? after it"
    start = len(head) + len(filler)
    left, right = cut_range(text, start, start + 5, 200)
    assert left == len(head) - 1  # just after "here.": the piece before ends with the sentence
    assert text[right - 1] == "?" and right == text.index("?") + 1
    # no sentence end on a side: the cut reaches the text's edge
    assert cut_range(filler + "MATCH" + filler, len(filler), len(filler) + 5, 200) == (0, 2 * len(filler) + 5)
    # a sentence end exactly 200 characters before the match: the cut starts right after it
    text = "x" * 50 + "." + "y" * 199 + "MATCH" + "z" * 300
    assert cut_range(text, 250, 255, 200)[0] == 51
    # the 200 characters are counted in the original text, not in words
    assert cut_range("a" * 1000, 500, 505, 200) == (0, 1000)


def test_cuts_merge_and_pieces_are_the_rest():
    assert merge([(50, 60), (0, 10), (10, 20), (55, 70)]) == [(0, 20), (50, 70)]
    assert pieces_between(100, [(0, 20), (50, 70)]) == [(20, 50), (70, 100)]
    assert pieces_between(70, [(10, 20), (50, 70)]) == [(0, 10), (20, 50)]


# real task text in real documents


def test_injected_lambada_passage_is_cut_with_its_context(matcher, items, web_documents):
    document = web_documents[6]  # 8,890 characters of a real crawled page
    leak = passage(items, 11)
    text, at = inject(document, leak)
    outcome = decontaminate(text, matcher)
    assert outcome.reason is None and len(outcome.cuts) == 1
    (cut_start, cut_end), = outcome.cuts
    assert cut_start <= at - 200 and cut_end >= at + len(leak) + 200
    assert text[cut_start - 1] in ".!?" and text[cut_end - 1] in ".!?"
    assert not re.search(r"[.!?]", text[cut_start : at - 200])  # the nearest sentence end, not a further one
    kept = [text[s:e] for s, e in outcome.pieces]
    assert len(kept) == 2 and kept[0] == text[:cut_start] and kept[1] == text[cut_end:]
    for piece in kept:
        assert not ngrams(piece) & ngrams(leak)
        assert not matcher.matches(piece)
    assert [matcher.index.item(i) for i in matcher.item_ids(outcome.matches)] == [("lambada", "test", 11)]
    assert outcome.removed_chars(len(text)) == cut_end - cut_start


def test_documents_without_task_text_are_untouched(matcher, web_documents, paragraphs):
    for document in web_documents + paragraphs:
        outcome = decontaminate(document, matcher)
        assert outcome.untouched and outcome.reason is None and not outcome.matches


def test_short_task_texts_whole_or_ignored(matcher, items, paragraphs):
    document = " ".join(paragraphs[:3])
    # 8-12 words: the whole text is an n-gram of its own length
    whole = items["piqa"][2].texts[0]
    outcome = decontaminate(inject(document, whole)[0], matcher)
    assert [(m.length, matcher.index.item(int(matcher.item_ids([m])[0]))) for m in outcome.matches] == [
        (10, ("piqa", "validation", 2))]
    # fewer than 8 words: ignored
    short = items["piqa"][5].texts[0]  # "Remove soap scum from shower door." (6 words)
    assert decontaminate(inject(document, short)[0], matcher).untouched
    # 10 words of a passage (no 13-gram, not a whole task text) stay
    ten = " ".join(passage(items, 3).split()[5:15])
    assert len(words(ten)) <= 12 and decontaminate(inject(document, ten)[0], matcher).untouched


def test_more_than_10_cuts_drops_the_document(matcher, items, paragraphs):
    def with_leaks(n: int) -> str:
        # two paragraphs between leaks: more than 2 x 200 characters plus the sentences cut into
        parts = [paragraphs[0]]
        for i in range(n):
            parts += [passage(items, 100 + i), paragraphs[2 * i + 1] + " " + paragraphs[2 * i + 2]]
        return "\n".join(parts)

    ten = decontaminate(with_leaks(10), matcher)
    assert ten.reason is None and len(ten.cuts) == 10
    eleven = decontaminate(with_leaks(11), matcher)
    assert eleven.reason == CONTAMINATED and len(eleven.cuts) == 11 and not eleven.pieces


def test_pieces_under_200_characters_are_dropped(matcher, items, paragraphs):
    # A short paragraph between two leaks ends up in no piece; a document that is all leak has none.
    short = next(p for p in paragraphs if len(p) < 600)
    text = paragraphs[0] + "\n" + passage(items, 1) + "\n" + short + "\n" + passage(items, 2) + "\n" + paragraphs[1]
    outcome = decontaminate(text, matcher)
    pieces = pieces_between(len(text), outcome.cuts)
    assert outcome.reason is None and all(e - s >= 200 for s, e in outcome.pieces)
    assert outcome.short_pieces == len(pieces) - len(outcome.pieces)
    assert not any(short in text[s:e] for s, e in outcome.pieces)

    alone = decontaminate(passage(items, 1) + " " + paragraphs[0][:150], matcher)
    assert alone.reason == NO_CLEAN_PIECE and not alone.pieces


def test_exempt_ngrams_never_match(index, items, paragraphs):
    leak = passage(items, 11)
    text = inject(" ".join(paragraphs[:2]), leak)[0]
    w = words(leak)
    keys = {(13, int(h)) for h in window_hashes(word_hashes(w), (13,))[13]}
    assert Matcher(index).distinct_keys(text) == keys
    assert decontaminate(text, Matcher(index, exempt=keys)).untouched
    half = set(sorted(keys)[: len(keys) // 2])
    assert Matcher(index, exempt=half).distinct_keys(text) == keys - half


# document rows in, rows out (what the Spark stage runs per batch)


def test_batch_rows_pieces_and_untouched_documents(matcher, items, web_documents, paragraphs):
    from dataprep.decontaminate.rows import decontaminate_batch, output_schema, piece_doc_id
    from dataprep.framework.tally import Tally
    from dataprep.schema import DOCUMENT_SCHEMA, DROP_REASON, IN_ROWS

    leaky, at = inject(web_documents[6], passage(items, 11))
    many = "\n".join(p for i in range(11) for p in (passage(items, 200 + i), paragraphs[2 * i] + " " + paragraphs[2 * i + 1]))
    texts = [web_documents[0], leaky, many, None]
    rows = [{"doc_id": f"{i:016x}", "source": "cc", "url": None, "origin": f"f.jsonl:{i}", "lang": "en",
             "lang_score": 0.9, "text": t} for i, t in enumerate(texts)]
    batch = pa.RecordBatch.from_pylist(rows, schema=DOCUMENT_SCHEMA)
    schema = output_schema(batch.schema)
    tally = Tally()
    out = decontaminate_batch(batch, matcher, schema, tally).to_pylist()

    untouched = [r for r in out if r["doc_id"] in (rows[0]["doc_id"], rows[3]["doc_id"])]
    assert [{k: r[k] for k in rows[0]} for r in untouched] == [rows[0], rows[3]]
    assert all(r["piece"] is None and r["parent_doc_id"] is None and r["cuts"] is None for r in untouched)
    pieces = [r for r in out if r["parent_doc_id"] == rows[1]["doc_id"]]
    assert [r["piece"] for r in pieces] == [0, 1]
    assert [r["doc_id"] for r in pieces] == [piece_doc_id(rows[1]["doc_id"], k) for k in (0, 1)]
    assert piece_doc_id("0000000000000001", 0) == hashlib.sha1(b"0000000000000001\x000").hexdigest()[:16]
    assert [r[IN_ROWS] for r in pieces] == [1, 0] and all(r[DROP_REASON] is None for r in pieces)
    (cut,) = pieces[0]["cuts"]
    assert pieces[0]["text"] == leaky[: cut["start"]] and pieces[1]["text"] == leaky[cut["end"] :]
    assert all(r["origin"] == "f.jsonl:1" and r["source"] == "cc" for r in pieces)
    dropped = next(r for r in out if r["doc_id"] == rows[2]["doc_id"])
    assert dropped[DROP_REASON] == "contaminated" and dropped["text"] == many and len(dropped["cuts"]) == 11
    assert tally.total("documents", "untouched") == 2 and tally.total("documents", "split") == 1
    assert tally.total("documents", "contaminated") == 1 and tally.total("pieces", "kept") == 2
    assert tally.total("matches", "lambada") >= 12 and "piqa" not in tally.counters["matches"]
    assert tally.total("characters_removed") == cut["end"] - cut["start"]
    found = sorted(matcher.index.item(item) for item in tally.counters["items"])
    assert found == [("lambada", "test", i) for i in [11, *range(200, 211)]]


def test_index_command_prints_counts_size_and_build_time(tmp_path, capsys):
    from dataprep.decontaminate.index import main

    assert main(["--out", str(tmp_path / "piqa.npz"), "--task", "piqa"]) == 0
    printed = capsys.readouterr().out
    assert "piqa" in printed and "24,811" in printed and "built in" in printed and " MB" in printed
    assert TaskIndex.load(tmp_path / "piqa.npz").counts["piqa"]["ngrams"] == 24811
