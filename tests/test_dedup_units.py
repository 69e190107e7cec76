"""Dedup's plain functions on real text: normal forms, shingles, signatures equal to datasketch's,
band keys, exact Jaccard, ranking. No Spark."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from dataprep.config import DataprepConfig
from dataprep.dedup.minhash import EMPTY, band_keys, permutations, signatures
from dataprep.dedup.normalize import normalize_text, normalize_url, text_key
from dataprep.dedup.ranking import origin_parts, rank_key, source_rank
from dataprep.dedup.shingles import shingle_hash, shingle_hashes, shingles, words
from dataprep.dedup.verify import at_least, jaccard, jaccard_counts

FIXTURES = Path(__file__).parent / "fixtures"


def wikipedia_articles() -> list[str]:
    """The wikitext-2 fixture's articles (split at their "= Title =" headings)."""
    text = (FIXTURES / "blending" / "wikitext2_valid_head.txt").read_text(encoding="utf-8")
    articles, current = [], []
    for line in text.split("\n"):
        if line.startswith(" = ") and not line.startswith(" = = ") and current:
            articles.append("\n".join(current))
            current = []
        current.append(line)
    articles.append("\n".join(current))
    return [a for a in articles if len(a) > 2000]


@pytest.fixture(scope="module")
def documents() -> list[str]:
    """Real documents of every size: Wikipedia articles, Common Crawl documents (dolma's CCNet head),
    Sherlock Holmes paragraphs (some of a few words), and no text at all."""
    with gzip.open(FIXTURES / "text" / "dolma_cc_en_head-0091.jsonl.gz", "rt", encoding="utf-8") as f:
        crawl = [json.loads(line)["text"] for line in f]
    sherlock = (FIXTURES / "text" / "sherlock_holmes_head.txt").read_text(encoding="iso-8859-1")
    paragraphs = [p.strip() for p in sherlock.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return wikipedia_articles()[:12] + crawl + paragraphs[:40] + ["", "¡Sí!", "Ⅻ café"]


def test_url_normal_form():
    assert normalize_url("HTTP://Example.COM:80/a/b/?q=1#top") == "http://example.com/a/b?q=1"
    assert normalize_url("https://example.com:443/") == "https://example.com"
    assert normalize_url("https://example.com:8443/Path/") == "https://example.com:8443/Path"
    assert normalize_url("https://user:pw@Example.com/x") == "https://user:pw@example.com/x"
    assert normalize_url("http://example.com/a?b=C") != normalize_url("http://example.com/a?b=c")
    assert normalize_url(None) is None and normalize_url("  ") is None
    assert normalize_url("http://example.com:port/x/") == "http://example.com:port/x"  # not a URL: as it is


def test_text_normal_form():
    decomposed = "Cafe\u0301  Society\n\tTONIGHT "
    assert normalize_text(decomposed) == "café society tonight"
    assert text_key(decomposed) == text_key("café society tonight") != text_key("café society")


def test_shingles_are_word_5_grams(documents):
    text = "The cat sat on the mat, and the cat sat on the mat again."
    assert words(text)[:3] == ["the", "cat", "sat"]
    assert ("the", "cat", "sat", "on", "the") in shingles(text)
    assert len(shingles(text)) == len(set(zip(*(words(text)[i:] for i in range(5)))))
    assert shingles("Only three words") == {("only", "three", "words")}
    assert shingles("") == set() and shingles("  ,; ") == set()
    # the batch hashes are the scalar hashes of each document's shingles, in order
    hashes, counts = shingle_hashes(documents)
    start = 0
    for text, n in zip(documents, counts):
        w = words(text)
        expected = [shingle_hash(w[i : i + 5]) for i in range(max(len(w) - 4, 1))] if w else []
        assert hashes[start : start + n].tolist() == expected
        start += n


def test_signatures_equal_datasketch(documents):
    config = DataprepConfig().dedup
    ours = signatures(documents, config.num_perm, config.seed)
    a, b = permutations(config.num_perm, config.seed)
    reference = MinHash(num_perm=config.num_perm, seed=config.seed)
    assert reference.scheme == "affine32"
    assert np.array_equal(a.ravel(), reference.permutations[0]) and np.array_equal(b.ravel(), reference.permutations[1])
    for text, signature in zip(documents, ours):
        w = words(text)
        items = [tuple(w[i : i + 5]) for i in range(max(len(w) - 4, 1))] if w else []
        theirs = MinHash(num_perm=config.num_perm, seed=config.seed, hashfunc=shingle_hash)
        theirs.update_batch(items)
        assert np.array_equal(signature, theirs.hashvalues)
    assert (ours[documents.index("")] == EMPTY).all()
    # the same documents in another batch, another order: the same signatures
    again = signatures(documents[::-1], config.num_perm, config.seed)[::-1]
    assert np.array_equal(ours, again)


def test_signatures_estimate_jaccard(documents):
    article = wikipedia_articles()[0]
    rng = random.Random(3)
    edited = " ".join(w if rng.random() > 0.02 else "lobster" for w in article.split(" "))
    sig = signatures([article, edited, documents[20]], 260, 1)
    true = jaccard(article, edited)
    assert 0.75 < true < 0.95
    assert abs(np.mean(sig[0] == sig[1]) - true) < 0.08  # 260 permutations: standard error ~0.025
    assert np.mean(sig[0] == sig[2]) < 0.05


def test_band_keys():
    sig = signatures([wikipedia_articles()[1]] * 2 + [wikipedia_articles()[2]], 260, 1)
    sig[1, 13] ^= 1  # the copy differs in one value of band 1
    keys = band_keys(sig, 20, 13)
    assert keys.shape == (3, 20) and keys.dtype == np.int64
    assert (keys[0] == keys[1]).sum() == 19 and keys[0, 1] != keys[1, 1]
    assert not (keys[0] == keys[2]).any()
    assert len(set(keys[0].tolist())) == 20  # equal values in two bands are still two keys
    with pytest.raises(ValueError):
        band_keys(sig, 21, 13)


def test_exact_jaccard_threshold():
    assert jaccard_counts({1, 2, 3, 4, 5}, {1, 2, 3, 4, 6}) == (4, 6)
    assert at_least(4, 5, 0.8) and not at_least(3999, 5000, 0.8) and at_least(4000, 5000, 0.8)
    assert not at_least(0, 0, 0.8)
    a = "one two three four five six seven eight nine ten eleven twelve"
    assert jaccard(a, a.upper()) == 1.0
    assert jaccard(a, a.replace("twelve", "zwölf")) == pytest.approx(7 / 9)


def test_ranking():
    assert origin_parts("CC-MAIN-0001.warc.gz@1234") == ("CC-MAIN-0001.warc.gz", 1234)
    assert origin_parts("wiki.jsonl:17") == ("wiki.jsonl", 17)
    assert origin_parts("host:8080@99") == ("host:8080", 99)
    assert origin_parts("notes.txt") == ("notes.txt", -1)
    priority = ("wikipedia", "books3")
    assert source_rank("books3", priority) == 1 and source_rank("zeta", priority) == source_rank("alpha", priority) == 2
    docs = [
        rank_key("common-crawl", "a.warc.gz@100", "f0", priority),
        rank_key("common-crawl", "a.warc.gz@99", "f1", priority),  # 99 before 100: numbers as numbers
        rank_key("alpha", "z.jsonl:1", "f2", priority),  # unlisted: after listed, by name
        rank_key("wikipedia", "w.jsonl:5", "f3", priority),
        rank_key("common-crawl", "a.warc.gz@5", "f4", priority, earlier=True),
    ]
    assert [k[-1] for k in sorted(docs)] == ["f4", "f3", "f2", "f1", "f0"]
