"""html_to_text on real pages of the article-extraction benchmark (with their gold article bodies),
scored with the benchmark's own shingle metric (bench/_aeb_metric.py)."""

import copy
import dataclasses
import gzip
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import justext
import pytest

from dataprep.extract.html_clean import remove_boilerplate
from dataprep.extract.html_text import (
    DEFAULT_PARAMS,
    JUSTEXT_DEFAULTS,
    MIN_REPEATED_PARAGRAPH_CHARS,
    PARAGRAPH_SEPARATOR,
    _ParagraphMaker,
    _parse,
    classify_paragraphs,
    html_to_text,
    stoplist_name,
)
from dataprep.extract.justext_revise import revise_paragraph_classification

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _aeb_metric import page_counts, page_precision, page_recall, scores  # noqa: E402

AEB = ROOT / "tests" / "fixtures" / "html" / "aeb"
COMMENTS_PAGE = "8e3efab59f48fd29a1e1e7aa135880c4251a9f090f94999668cdbaec59d30b5a"  # profootballtalk, en
PRIVACY_POPUP_PAGE = "1f765c48780665e89cc3af1f7c9af47876e9fae9b5be4a936b0649e10f5e3198"  # sputniknews, en
FORM_WRAPPED_PAGE = "42aad16bde9288623543642a9ce1a396be83e2db44aa2ff8cbbfe46e14abd7cc"  # aljazeera, en
GERMAN_PAGE = "ba07d1e64775f4090e39116c382111f5a2cfe9528dd179673f4e9bfcea370c15"  # blog.comwrap.com
JAPANESE_PAGE = "85439e26c41c75901820d01a13e8cea7836abb58635ea3986f71a163ab0311d3"  # lhpat-tm.com


@pytest.fixture(scope="module")
def truth() -> dict[str, str]:
    data = json.loads((AEB / "ground-truth.json").read_text(encoding="utf-8"))
    return {page_id: item["articleBody"] for page_id, item in data.items()}


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return {path.name.removesuffix(".html.gz"): gzip.decompress(path.read_bytes()).decode("utf-8")
            for path in sorted(AEB.glob("*.html.gz"))}


def plain_justext(html: str) -> str:
    """jusText as shipped: default parameters, English stoplist, its own pre-cleaning."""
    paragraphs = justext.justext(html, justext.get_stoplist("English"))
    return "\n\n".join(p.text for p in paragraphs if not p.is_boilerplate)


@pytest.mark.parametrize(
    "page_id, boilerplate",
    [
        (COMMENTS_PAGE, "Rivers is done. Get a new QB, Chargers."),  # a reader comment
        (PRIVACY_POPUP_PAGE, "We are committed to protecting your personal information"),  # GDPR pop-up
        (FORM_WRAPPED_PAGE, "This illustration of SpaceX's concept for a commercial lunar lander"),  # figure caption
    ],
)
def test_article_kept_and_boilerplate_that_plain_justext_keeps_removed(pages, truth, page_id, boilerplate):
    html = pages[page_id]
    ours = html_to_text(html, "en")
    assert page_recall(truth[page_id], ours) >= 0.95
    assert page_precision(truth[page_id], ours) >= 0.9
    assert boilerplate in plain_justext(html)
    assert boilerplate not in ours


def test_navigation_removed_but_page_wrapped_in_a_form_keeps_its_article(pages, truth):
    html = pages[FORM_WRAPPED_PAGE]
    assert "TRENDING:" in html and "<form" in html  # an ASP.NET-style page: one <form> around the whole body
    text = html_to_text(html, "en")
    assert "TRENDING:" not in text
    assert page_recall(truth[FORM_WRAPPED_PAGE], text) >= 0.95


def test_german_page_needs_the_german_stoplist(pages, truth):
    html, gold = pages[GERMAN_PAGE], truth[GERMAN_PAGE]
    without_fallback = dataclasses.replace(DEFAULT_PARAMS, fallback=False)
    german = html_to_text(html, "de", without_fallback)
    english = html_to_text(html, "en", without_fallback)
    assert page_recall(gold, german) >= 0.95
    assert page_recall(gold, english) <= 0.2  # German prose has almost no English stopwords
    assert len(english) < 0.2 * len(german)


def test_page_where_nothing_is_good_gets_the_language_independent_pass(pages, truth):
    """The German page under the English stoplist: jusText keeps nothing, the second pass the article."""
    html, gold = pages[GERMAN_PAGE], truth[GERMAN_PAGE]
    assert html_to_text(html, "en", dataclasses.replace(DEFAULT_PARAMS, fallback=False)) == ""
    text = html_to_text(html, "en")
    assert page_recall(gold, text) >= 0.95 and page_precision(gold, text) >= 0.9


def test_japanese_page_in_language_independent_mode(pages, truth):
    html, gold = pages[JAPANESE_PAGE], truth[JAPANESE_PAGE]
    assert stoplist_name("ja") is None
    text = html_to_text(html, "ja")
    assert text
    assert page_recall(gold, text) >= 0.9
    assert "脱獄" in text
    # Japanese paragraphs are short in characters: with alphabetic-script lengths they are all too short
    undivided = dataclasses.replace(DEFAULT_PARAMS, dense_script_length_divisor=1)
    assert page_recall(gold, html_to_text(html, "ja", undivided)) < page_recall(gold, text)


def test_better_than_justext_defaults_on_the_fixture_pages(pages, truth):
    languages = {GERMAN_PAGE: "de", JAPANESE_PAGE: "ja"}
    ours = scores([page_counts(truth[p], html_to_text(pages[p], languages.get(p, "en"))) for p in pages])
    plain = scores([page_counts(truth[p], html_to_text(pages[p], languages.get(p, "en"), JUSTEXT_DEFAULTS))
                    for p in pages])
    assert ours["f1"] >= 0.95
    assert ours["f1"] > plain["f1"] + 0.05


def test_output_format_paragraphs_and_whitespace(pages):
    text = html_to_text(pages[PRIVACY_POPUP_PAGE], "en")
    paragraphs = text.split(PARAGRAPH_SEPARATOR)
    assert len(paragraphs) >= 10
    for paragraph in paragraphs:
        assert paragraph and paragraph == paragraph.strip()
        assert "\n" not in paragraph and "  " not in paragraph
    assert html_to_text(pages[PRIVACY_POPUP_PAGE], "en") == text  # deterministic


def test_article_carried_twice_is_kept_once(pages):
    html = pages[GERMAN_PAGE]
    body = html.split("<body", 1)[1].split(">", 1)[1].rsplit("</body>", 1)[0]
    doubled = html.replace("</body>", body + "</body>", 1)  # the page's content twice, as with a no-script copy
    single = html_to_text(html, "de").split(PARAGRAPH_SEPARATOR)
    twice = html_to_text(doubled, "de").split(PARAGRAPH_SEPARATOR)
    long_ones = [p for p in single if len(p) >= MIN_REPEATED_PARAGRAPH_CHARS]
    assert len(long_ones) >= 5
    assert [p for p in twice if len(p) >= MIN_REPEATED_PARAGRAPH_CHARS] == long_ones
    assert len(twice) > len(single)  # short repeats are left alone


def test_article_nested_deeper_than_libxml2s_default_limit_is_kept(pages):
    html = pages[GERMAN_PAGE]
    unclosed = html.replace("<body", "<body><font>" + "<font size=2>" * 400 + "<span", 1)  # an old forum's markup
    assert html_to_text(unclosed, "de") == html_to_text(html, "de")


def test_linear_revision_gives_justexts_classes_on_random_pages():
    rng = random.Random(7)
    for _ in range(3000):
        n = rng.randrange(0, 30)
        cf_classes = rng.choices(["good", "bad", "neargood", "short"], weights=[2, 3, 2, 3], k=n)
        spec = [(cls, rng.random() < 0.25, "x" * rng.randrange(1, 120)) for cls in cf_classes]
        theirs = [SimpleNamespace(cf_class=c, heading=h, text=t, class_type="") for c, h, t in spec]
        ours = [SimpleNamespace(cf_class=c, heading=h, text=t, class_type="") for c, h, t in spec]
        distance = rng.choice([0, 50, 200])
        justext.core.revise_paragraph_classification(theirs, distance)
        revise_paragraph_classification(ours, distance)
        assert [p.class_type for p in ours] == [p.class_type for p in theirs], spec


def test_linear_revision_gives_justexts_classes_on_real_pages(pages):
    languages = {GERMAN_PAGE: "de", JAPANESE_PAGE: "ja"}
    revised = set()
    for page_id, html in pages.items():
        name = stoplist_name(languages.get(page_id, "en"))
        stoplist = justext.get_stoplist(name) if name else frozenset()
        for params in (DEFAULT_PARAMS, JUSTEXT_DEFAULTS):
            ours = _ParagraphMaker.make_paragraphs(remove_boilerplate(_parse(html)))
            justext.core.classify_paragraphs(ours, stoplist, params.length_low, params.length_high,
                                             params.stopwords_low, params.stopwords_high, params.max_link_density)
            theirs = copy.deepcopy(ours)
            justext.core.revise_paragraph_classification(theirs, params.max_heading_distance)
            revise_paragraph_classification(ours, params.max_heading_distance)
            assert [p.class_type for p in ours] == [p.class_type for p in theirs]
            revised |= {(p.cf_class, p.class_type) for p in ours}
    # every context rule had work to do
    assert {("short", "good"), ("short", "bad"), ("neargood", "good"), ("neargood", "bad")} <= revised


def test_paragraphs_match_justext_sax_splitter(pages):
    """The direct tree walk gives jusText's own lxml.sax-driven splitter's paragraphs: the same paths,
    link characters and tag counts, and the same text up to the kind of whitespace (jusText keeps a
    newline where a run of whitespace holds one; its length and words are the same)."""
    multi_line = 0
    for html in pages.values():
        ours = _ParagraphMaker.make_paragraphs(remove_boilerplate(_parse(html)))
        theirs = justext.core.ParagraphMaker.make_paragraphs(remove_boilerplate(_parse(html)))
        multi_line += sum("\n" in p.text for p in theirs)
        assert [(p.text, len(p.text), p.dom_path, p.chars_count_in_links, p.tags_count) for p in ours] == [
            (" ".join(p.text.split()), len(p.text), p.dom_path, p.chars_count_in_links, p.tags_count) for p in theirs
        ]
    assert multi_line > 0  # the pages do have paragraphs that jusText keeps on several lines


@pytest.mark.parametrize("params", [DEFAULT_PARAMS, JUSTEXT_DEFAULTS], ids=["ours", "justext_defaults"])
def test_classification_matches_justexts_on_real_pages(pages, params):
    """classify_paragraphs decides as justext.core.classify_paragraphs does, paragraph by paragraph, with
    each page's stoplist and in the language-independent mode (empty stoplist, thresholds 0)."""
    decided = set()
    for page_id, html in pages.items():
        language = {GERMAN_PAGE: "de", JAPANESE_PAGE: "ja"}.get(page_id, "en")
        name = stoplist_name(language)
        for stoplist, low, high in ((frozenset(justext.get_stoplist(name)) if name else frozenset(),
                                     params.stopwords_low, params.stopwords_high), (frozenset(), 0.0, 0.0)):
            ours = _ParagraphMaker.make_paragraphs(remove_boilerplate(_parse(html)))
            theirs = justext.core.ParagraphMaker.make_paragraphs(remove_boilerplate(_parse(html)))
            classify_paragraphs(ours, frozenset(w.lower() for w in stoplist), params.length_low, params.length_high,
                                low, high, params.max_link_density, params.no_headings)
            justext.core.classify_paragraphs(theirs, stoplist, params.length_low, params.length_high, low, high,
                                             params.max_link_density, params.no_headings)
            assert [(p.cf_class, p.heading) for p in ours] == [(p.cf_class, p.heading) for p in theirs]
            decided |= {p.cf_class for p in ours}
    assert decided == {"good", "neargood", "short", "bad"}


@pytest.mark.parametrize(
    "language, stoplist",
    [("de", "German"), ("en", "English"), ("pt-BR", "Portuguese"), ("iw", "Hebrew"), ("he", "Hebrew"),
     ("no", "Norwegian_Bokmal"), ("ja", None), ("zh-Hant", None), ("th", None), (None, None), ("", None)],
)
def test_stoplist_names(language, stoplist):
    assert stoplist_name(language) == stoplist
    if stoplist:
        assert stoplist in justext.get_stoplists()


@pytest.mark.parametrize("html", ["", "   \n", "<!-- only a comment -->", "<html><head><title>t</title></head></html>"])
def test_pages_without_text_give_empty_string(html):
    assert html_to_text(html, "en") == ""


def test_decoded_page_with_stale_declarations_and_control_characters(pages):
    """A str page keeps its XML/meta encoding declarations (the bytes were decoded upstream); NULs happen."""
    body = pages[GERMAN_PAGE].split("<body", 1)[1]
    html = ('<?xml version="1.0" encoding="iso-8859-1"?>\n<html><head><meta charset="iso-8859-1"></head><body'
            + body.replace("Die ", "Die\x00 ", 3))
    text = html_to_text(html, "de")
    assert "ä" in text or "ü" in text or "ö" in text
    assert "Ã" not in text  # not re-decoded as Latin-1


def test_metric_handles_empty_predictions_as_the_benchmark_does():
    counts = [page_counts("one two three four five", ""), page_counts("one two three four five", "one two three four")]
    assert counts[0] == (0.0, 0.0, 1.0)
    result = scores(counts)
    assert result["precision"] == 1.0  # the empty prediction is left out of precision
    assert result["recall"] == pytest.approx((0.0 + 0.5) / 2)  # and counts 0 in recall


def _with_before_body_end(html: str, block: str) -> str:
    end = html.rindex("</body>")
    return html[:end] + block + html[end:]


def test_good_text_outside_the_article_block_is_dropped(pages, truth):
    """Teasers of other articles (real prose from another page, in a list after the article) pass
    jusText's tests; they lie outside the element holding most of the good text and are dropped."""
    teasers = [p for p in truth[FORM_WRAPPED_PAGE].split("\n") if len(p) > 200][:2]
    assert len(teasers) == 2
    items = "".join(f"<li><h5><a href='/x{i}'>Story {i}</a></h5><div>{t}</div></li>" for i, t in enumerate(teasers))
    html = _with_before_body_end(pages[PRIVACY_POPUP_PAGE], f"<div class='more-stories'><ul>{items}</ul></div>")
    text = html_to_text(html, "en")
    assert page_recall(truth[PRIVACY_POPUP_PAGE], text) >= 0.95
    assert not any(t in text for t in teasers)
    everything = html_to_text(html, "en", dataclasses.replace(DEFAULT_PARAMS, main_block_share=None))
    assert all(t in everything for t in teasers)


def test_article_repeated_as_one_block_is_kept_once(pages, truth):
    html = pages[COMMENTS_PAGE]
    text = html_to_text(html, "en")
    copy = " ".join(text.split(PARAGRAPH_SEPARATOR))  # the article again, as some pages carry it in one block
    twice = html_to_text(_with_before_body_end(html, f"<div>{copy}</div>"), "en",
                         dataclasses.replace(DEFAULT_PARAMS, main_block_share=None))
    assert twice == text


def test_title_left_out_unless_asked_for(pages, truth):
    """A page of the NASA article's gold paragraphs under its own <h1>."""
    (title,) = [" ".join(h.xpath("string()").split()) for h in _parse(pages[FORM_WRAPPED_PAGE]).iter("h1")]
    body = "".join(f"<p>{p}</p>" for p in truth[FORM_WRAPPED_PAGE].split("\n") if p.strip())
    html = f"<html><body><article><h1>{title}</h1>{body}</article></body></html>"
    assert html_to_text(html, "en") == html_to_text(html, "en", dataclasses.replace(DEFAULT_PARAMS, keep_title=True)
                                                    ).removeprefix(title + PARAGRAPH_SEPARATOR)
    assert html_to_text(html, "en", dataclasses.replace(DEFAULT_PARAMS, keep_title=True)).startswith(title)
