"""HTML page -> its main text, with jusText.

`html_to_text(html, language)` takes an already decoded page and the ISO 639-1 code of its language
(as pycld2 reports it: "en", "de", "ja", "zh-Hant", CLD2's "iw"/"jw" included) and returns the text of
the paragraphs jusText classifies as good, joined with "\\n\\n" (one blank line between paragraphs).
Whitespace inside a paragraph, line breaks of the HTML source included, becomes one space, as a browser
renders it.

Steps: parse with lxml; remove boilerplate the markup names (`html_clean.remove_boilerplate`: scripts,
navigation, footers, sidebars, share bars, comment sections, ...); split into paragraphs and classify
them with jusText's algorithm (`justext.core`'s splitter and context-free classifier; its context
revision as `justext_revise`, the same classes in linear time), with the parameters of `JustextParams`.
jusText's decisions are then narrowed, never widened: good paragraphs outside the innermost element
that holds `main_block_share` of the good text (teasers of other articles, a "most popular" list) and
the page's <h1> title become bad; of the good paragraphs, long text that repeats earlier text (the
same paragraph again, or the whole article again as one block) is kept once. The one exception: a
page where jusText finds nothing good (a short item, a results table) is classified once more in the
language-independent mode, with a lower length threshold for "good" (`fallback_length_high`).

Language handling: jusText scores a paragraph by the share of its words that are stopwords of the
page's language, so the stoplist must match the page: the English stoplist empties a German page.
`language` is mapped to jusText's stoplist name ("de" -> "German"). For a language jusText has no
stoplist for (Japanese, Chinese, Thai, ...: mostly scripts without spaces between words, where a
stopword share means nothing) or when `language` is None, jusText runs in its language-independent
mode: an empty stoplist with both stopword thresholds at 0, so paragraphs are judged by length, link
density and their neighbours alone. Chinese and Japanese carry about three times as much per character
as alphabetic scripts, so their length thresholds are divided by `dense_script_length_divisor`.

The parameters were tuned on half of the article-extraction benchmark's pages and checked on the other
half and on trafilatura's evaluation pages (bench/extraction_quality.py); jusText's own defaults
(`JUSTEXT_DEFAULTS`) keep less of an article: they stop paragraphs under 200 characters that sit among
boilerplate, prose with a stopword share under 30%, and anything with a link share above 20%.

A page with no parsable content gives "" (the caller counts it as an empty extraction).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from functools import cache

import justext
import lxml.etree
import lxml.html
from justext.core import PARAGRAPH_TAGS
from justext.paragraph import HEADINGS_PATTERN, Paragraph

from dataprep.extract.html_clean import remove_boilerplate
from dataprep.extract.justext_revise import revise_paragraph_classification

PARAGRAPH_SEPARATOR = "\n\n"
MIN_REPEATED_PARAGRAPH_CHARS = 50  # a good paragraph this long that repeats earlier text is dropped
REPEATED_SHARE = 0.5  # ... as is one whose text is this much made of earlier paragraphs


@dataclass(frozen=True)
class JustextParams:
    length_low: int = 30  # shorter: "short", classified by its neighbours
    length_high: int = 150  # longer, with enough stopwords: "good" on its own
    stopwords_low: float = 0.12  # stopword share below: "bad"
    stopwords_high: float = 0.30  # at or above (and long): "good"
    # Share of characters inside links above which a paragraph is "bad". Menus and link lists are removed
    # before (html_clean) or come as short linked paragraphs, which jusText rejects anyway; encyclopedic
    # prose links half its words (a Wikipedia stub: 0.6-0.75). 0.4 to 0.8 score alike on the benchmarks.
    max_link_density: float = 0.8
    max_heading_distance: int = 200  # a heading this close (characters) before good text is kept
    no_headings: bool = False
    dense_script_length_divisor: int = 3  # Chinese and Japanese: length thresholds divided by this
    remove_boilerplate: bool = True  # html_clean before jusText
    # A page where nothing is good (a short news item, a results table) is classified again in the
    # language-independent mode, with this lower length threshold for "good".
    fallback: bool = True
    fallback_length_high: int = 70
    # Good text outside the innermost element holding this share of it becomes bad (None: all kept).
    main_block_share: float | None = 0.6
    keep_title: bool = False  # <h1>: the page's title, which the article's body leaves out


JUSTEXT_DEFAULTS = JustextParams(
    length_low=70, length_high=200, stopwords_low=0.30, stopwords_high=0.32, max_link_density=0.2,
    max_heading_distance=200, no_headings=False, dense_script_length_divisor=1, remove_boilerplate=False,
    fallback=False, main_block_share=None, keep_title=True,
)
DEFAULT_PARAMS = JustextParams()

DENSE_SCRIPT_LANGUAGES = frozenset({"zh", "ja"})

# ISO 639-1 (and CLD2's legacy or 639-2/3 codes where jusText has a stoplist) -> jusText stoplist name.
STOPLIST_BY_LANGUAGE = {
    "af": "Afrikaans", "sq": "Albanian", "ar": "Arabic", "an": "Aragonese", "hy": "Armenian",
    "rup": "Aromanian", "ast": "Asturian", "az": "Azerbaijani", "eu": "Basque", "be": "Belarusian",
    "bn": "Bengali", "bpy": "Bishnupriya_Manipuri", "bs": "Bosnian", "br": "Breton", "bg": "Bulgarian",
    "ca": "Catalan", "ceb": "Cebuano", "cv": "Chuvash", "hr": "Croatian", "cs": "Czech", "da": "Danish",
    "nl": "Dutch", "en": "English", "eo": "Esperanto", "et": "Estonian", "fi": "Finnish", "fr": "French",
    "gl": "Galician", "ka": "Georgian", "de": "German", "el": "Greek", "gu": "Gujarati", "ht": "Haitian",
    "he": "Hebrew", "iw": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "is": "Icelandic", "io": "Ido",
    "ig": "Igbo", "id": "Indonesian", "ga": "Irish", "it": "Italian", "jv": "Javanese", "jw": "Javanese",
    "kn": "Kannada", "kk": "Kazakh", "ko": "Korean", "ku": "Kurdish", "ky": "Kyrgyz", "la": "Latin",
    "lv": "Latvian", "lt": "Lithuanian", "lmo": "Lombard", "nds": "Low_Saxon", "lb": "Luxembourgish",
    "mk": "Macedonian", "ms": "Malay", "ml": "Malayalam", "mt": "Maltese", "mr": "Marathi",
    "nap": "Neapolitan", "ne": "Nepali", "new": "Newar", "nb": "Norwegian_Bokmal", "no": "Norwegian_Bokmal",
    "nn": "Norwegian_Nynorsk", "oc": "Occitan", "fa": "Persian", "pms": "Piedmontese", "pl": "Polish",
    "pt": "Portuguese", "qu": "Quechua", "ro": "Romanian", "ru": "Russian", "sgs": "Samogitian",
    "sr": "Serbian", "sh": "Serbo_Croatian", "scn": "Sicilian", "sk": "Slovak", "sl": "Slovenian",
    "es": "Spanish", "su": "Sundanese", "sw": "Swahili", "sv": "Swedish", "tl": "Tagalog", "fil": "Tagalog",
    "ta": "Tamil", "te": "Telugu", "tr": "Turkish", "tk": "Turkmen", "uk": "Ukrainian", "ur": "Urdu",
    "uz": "Uzbek", "vi": "Vietnamese", "vo": "Volapuk", "wa": "Walloon", "war": "Waray_Waray", "cy": "Welsh",
    "fy": "West_Frisian", "pnb": "Western_Panjabi", "yo": "Yoruba",
}


def _base_language(language: str | None) -> str:
    return (language or "").strip().lower().replace("_", "-").split("-")[0]


def stoplist_name(language: str | None) -> str | None:
    """jusText's stoplist name for an ISO 639-1 code ("de", "pt-BR", "zh-Hant"), None if it has none."""
    return STOPLIST_BY_LANGUAGE.get(_base_language(language))


@cache
def _stoplist(name: str) -> frozenset[str]:
    return frozenset(word.lower() for word in justext.get_stoplist(name))


class _Paragraph(Paragraph):
    """A jusText paragraph whose text is joined once, when it is complete (jusText's `text` property
    re-joins and re-normalises it on every access, and classification reads it many times)."""

    text = None  # shadows the property; set when the paragraph is complete

    def __init__(self, element: tuple) -> None:  # as jusText's, less the xpath string nothing here reads
        self.element = element  # the innermost open element: (number, depth, dotted tag path, parent's)
        self.dom_path = element[2]
        self.xpath = None
        self.text_nodes = []
        self.chars_count_in_links = 0
        self.tags_count = 0
        self.class_type = ""


def _normalized_length(content: str) -> int:
    """len(justext.utils.normalize_whitespace(content)) of a text that is not blank: each run of
    whitespace counts one character, the leading and the trailing one included."""
    return len(" ".join(content.split())) + content[0].isspace() + content[-1].isspace()


class _ParagraphMaker:
    """jusText's paragraph splitter (justext.core.ParagraphMaker: the same paragraphs, paths, link
    characters and tag counts) as one walk over the tree. A paragraph's text is its text nodes joined,
    with each run of whitespace made one space: jusText keeps a newline for a run that holds one, but
    nothing it decides on (length, words, link density) tells the two apart, and the output joins the
    words with spaces either way."""

    @staticmethod
    def make_paragraphs(root: lxml.etree._Element) -> list[_Paragraph]:
        paragraphs: list[_Paragraph] = []
        element_number = 0
        node = (0, 0, "", None)  # the innermost open element: (number, depth, dotted tag path, parent's)
        paragraph = _Paragraph(node)
        link = br = False
        for event, element in lxml.etree.iterwalk(root, events=("start", "end")):
            tag = element.tag
            is_tag = isinstance(tag, str)
            if event == "start":
                if not is_tag:
                    continue
                element_number += 1
                node = (element_number, node[1] + 1, f"{node[2]}.{tag}" if node[2] else tag, node)
                if tag in PARAGRAPH_TAGS or (br and tag == "br"):
                    if tag == "br":  # <br><br> separates paragraphs and is not counted as a tag of one
                        paragraph.tags_count -= 1
                    paragraph = _close(paragraph, paragraphs, node)
                else:
                    br = tag == "br"
                    if br:
                        paragraph.text_nodes.append(" ")
                    elif tag == "a":
                        link = True
                    paragraph.tags_count += 1
                content = element.text
            else:
                if is_tag:
                    node = node[3]
                    if tag in PARAGRAPH_TAGS:
                        paragraph = _close(paragraph, paragraphs, node)
                    if tag == "a":
                        link = False
                content = element.tail if element is not root else None
            if content and not content.isspace():
                paragraph.text_nodes.append(content)
                if link:
                    paragraph.chars_count_in_links += _normalized_length(content)
                br = False
        _close(paragraph, paragraphs, node)
        return paragraphs


def _close(paragraph: _Paragraph, paragraphs: list[_Paragraph], node: tuple) -> _Paragraph:
    """Keep `paragraph` if it holds text (a lone <br> gives only a space, which jusText drops); a new one."""
    if paragraph.text_nodes:
        text = " ".join("".join(paragraph.text_nodes).split())
        if text:
            paragraph.text = text
            paragraphs.append(paragraph)
    return _Paragraph(node)


def classify_paragraphs(
    paragraphs: list[_Paragraph], stoplist: frozenset[str], length_low: int, length_high: int,
    stopwords_low: float, stopwords_high: float, max_link_density: float, no_headings: bool,
) -> None:
    """jusText's context-free classification (justext.core.classify_paragraphs: the same tests in the
    same order, the same figures), with each paragraph's words split and lower-cased once."""
    for paragraph in paragraphs:
        text = paragraph.text
        length = len(text)
        words = text.lower().split()
        stopword_density = sum(map(stoplist.__contains__, words)) / len(words) if words and stoplist else 0
        link_density = paragraph.chars_count_in_links / length if length else 0
        paragraph.heading = not no_headings and HEADINGS_PATTERN.search(paragraph.dom_path) is not None
        if link_density > max_link_density or "\xa9" in text or "&copy" in text or "select" in paragraph.dom_path:
            paragraph.cf_class = "bad"
        elif length < length_low:
            paragraph.cf_class = "bad" if paragraph.chars_count_in_links > 0 else "short"
        elif stopword_density >= stopwords_high:
            paragraph.cf_class = "good" if length > length_high else "neargood"
        elif stopword_density >= stopwords_low:
            paragraph.cf_class = "neargood"
        else:
            paragraph.cf_class = "bad"


def _parse(html: str, html_elements: bool = False) -> lxml.etree._Element | None:
    # Parsing UTF-8 bytes with the encoding forced keeps a stale <meta charset> or an XML encoding
    # declaration in the already decoded text from changing how it is read. huge_tree: without it libxml2
    # silently drops everything nested deeper than 256 elements (pages with hundreds of unclosed <font>).
    # lxml.html's parser builds the same tree with lxml.html's element classes, which jusText's own
    # pre-cleaning needs; they cost a Python call per element touched, so the plain parser is the default.
    parser_class = lxml.html.HTMLParser if html_elements else lxml.etree.HTMLParser
    parser = parser_class(encoding="utf-8", huge_tree=True)
    try:
        return lxml.html.document_fromstring(html.encode("utf-8", "replace"), parser=parser)
    except lxml.etree.ParserError:  # "Document is empty": nothing to extract
        return None


def html_to_text(html: str, language: str | None, params: JustextParams = DEFAULT_PARAMS) -> str:
    """Main text of a decoded HTML page, paragraphs joined with "\\n\\n"; "" when nothing is kept."""
    paragraphs = classified_paragraphs(html, language, params)
    return PARAGRAPH_SEPARATOR.join(_kept_once(" ".join(p.text.split()) for p in paragraphs if p.class_type == "good"))


def boilerplate_paragraphs(html: str, language: str | None) -> list[str]:
    """The paragraphs jusText rejects when the markup's boilerplate is left in (navigation, footers,
    cookie notices, link lists): the web junk the quality classifier learns as `low`."""
    paragraphs = classified_paragraphs(html, language, replace(
        DEFAULT_PARAMS, remove_boilerplate=False, fallback=False, main_block_share=None, keep_title=True,
    ))
    return [" ".join(p.text.split()) for p in paragraphs if p.class_type != "good"]


def classified_paragraphs(html: str, language: str | None, params: JustextParams = DEFAULT_PARAMS) -> list[_Paragraph]:
    """The page's paragraphs, each with jusText's `class_type` ("good" is content)."""
    if not html or html.isspace():
        return []
    root = _parse(html, html_elements=not params.remove_boilerplate)
    if root is None:
        return []
    if params.remove_boilerplate:
        remove_boilerplate(root)
    else:  # jusText's own pre-cleaning only
        root = justext.core.preprocessor(root)
    paragraphs = _ParagraphMaker.make_paragraphs(root)

    name = stoplist_name(language)
    length_low, length_high = params.length_low, params.length_high
    if name is None:
        stoplist, stopwords_low, stopwords_high = frozenset(), 0.0, 0.0
        if _base_language(language) in DENSE_SCRIPT_LANGUAGES:
            length_low //= params.dense_script_length_divisor
            length_high //= params.dense_script_length_divisor
    else:
        stoplist, stopwords_low, stopwords_high = _stoplist(name), params.stopwords_low, params.stopwords_high
    classify_paragraphs(
        paragraphs, stoplist, length_low=length_low, length_high=length_high, stopwords_low=stopwords_low,
        stopwords_high=stopwords_high, max_link_density=params.max_link_density, no_headings=params.no_headings,
    )
    revise_paragraph_classification(paragraphs, params.max_heading_distance)
    if params.fallback and paragraphs and not any(p.class_type == "good" for p in paragraphs):
        classify_paragraphs(
            paragraphs, frozenset(), length_low=length_low, length_high=min(length_high, params.fallback_length_high),
            stopwords_low=0.0, stopwords_high=0.0, max_link_density=params.max_link_density,
            no_headings=params.no_headings,
        )
        revise_paragraph_classification(paragraphs, params.max_heading_distance)
    if params.main_block_share is not None:
        _keep_main_block(paragraphs, params.main_block_share)
    if not params.keep_title:
        for paragraph in paragraphs:
            if paragraph.dom_path.endswith(".h1"):
                paragraph.class_type = "bad"
    return paragraphs


def _keep_main_block(paragraphs: list[_Paragraph], share: float) -> None:
    """Good paragraphs outside the innermost element holding `share` of the good text become bad."""
    good = [p for p in paragraphs if p.class_type == "good"]
    chars: dict[int, int] = {}
    for paragraph in good:
        node = paragraph.element
        while node is not None:
            chars[node[0]] = chars.get(node[0], 0) + len(paragraph.text)
            node = node[3]
    total = sum(len(p.text) for p in good)
    block, depth = 0, -1
    for paragraph in good:
        node = paragraph.element
        while node is not None:
            if chars[node[0]] >= share * total and node[1] > depth:
                block, depth = node[0], node[1]
            node = node[3]
    for paragraph in good:
        node = paragraph.element
        while node is not None and node[0] != block:
            node = node[3]
        if node is None:
            paragraph.class_type = "bad"


def _kept_once(paragraphs: Iterable[str]) -> Iterator[str]:
    """Paragraphs in order, the article's text only once: some pages carry it twice (a no-script or hidden
    copy, or the whole article again as one block). A long paragraph is dropped when it repeats an earlier
    one, lies within one, or is mostly made of earlier ones. Short repeats ("Advertisement", a refrain)
    are left alone."""
    kept: list[str] = []
    for paragraph in paragraphs:
        if len(paragraph) >= MIN_REPEATED_PARAGRAPH_CHARS:
            if any(paragraph in earlier for earlier in kept):
                continue
            if sum(len(earlier) for earlier in kept if earlier in paragraph) >= REPEATED_SHARE * len(paragraph):
                continue
            kept.append(paragraph)
        yield paragraph
