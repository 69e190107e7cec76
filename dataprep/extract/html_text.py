"""HTML page -> its main text, with jusText.

`html_to_text(html, language)` takes an already decoded page and the ISO 639-1 code of its language
(as pycld2 reports it: "en", "de", "ja", "zh-Hant", CLD2's "iw"/"jw" included) and returns the text of
the paragraphs jusText classifies as good, joined with "\\n\\n" (one blank line between paragraphs).
Whitespace inside a paragraph, line breaks of the HTML source included, becomes one space, as a browser
renders it.

Steps: parse with lxml; remove boilerplate the markup names (`html_clean.remove_boilerplate`: scripts,
navigation, footers, sidebars, share bars, comment sections, ...); split into paragraphs and classify
them with jusText's algorithm (`justext.core`'s splitter and context-free classifier; its context
revision as `justext_revise`, the same classes in linear time), with the parameters of `JustextParams`;
keep the good ones, a long paragraph that repeats an earlier one verbatim only once.

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
from justext.core import ParagraphMaker, classify_paragraphs
from justext.paragraph import Paragraph

from dataprep.extract.html_clean import remove_boilerplate
from dataprep.extract.justext_revise import revise_paragraph_classification

PARAGRAPH_SEPARATOR = "\n\n"
MIN_REPEATED_PARAGRAPH_CHARS = 50  # a good paragraph this long that repeats an earlier one is dropped


@dataclass(frozen=True)
class JustextParams:
    length_low: int = 30  # shorter: "short", classified by its neighbours
    length_high: int = 150  # longer, with enough stopwords: "good" on its own
    stopwords_low: float = 0.15  # stopword share below: "bad"
    stopwords_high: float = 0.30  # at or above (and long): "good"
    # Share of characters inside links above which a paragraph is "bad". Menus and link lists are removed
    # before (html_clean) or come as short linked paragraphs, which jusText rejects anyway; encyclopedic
    # prose links half its words (a Wikipedia stub: 0.6-0.75). 0.4 to 0.8 score alike on the benchmarks.
    max_link_density: float = 0.8
    max_heading_distance: int = 200  # a heading this close (characters) before good text is kept
    no_headings: bool = False
    dense_script_length_divisor: int = 3  # Chinese and Japanese: length thresholds divided by this
    remove_boilerplate: bool = True  # html_clean before jusText


JUSTEXT_DEFAULTS = JustextParams(
    length_low=70, length_high=200, stopwords_low=0.30, stopwords_high=0.32, max_link_density=0.2,
    max_heading_distance=200, no_headings=False, dense_script_length_divisor=1, remove_boilerplate=False,
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

    text = None  # shadows the property; set by freeze()

    def __init__(self, path) -> None:  # as jusText's, less the xpath string nothing here reads
        self.dom_path = path.dom
        self.xpath = None
        self.text_nodes = []
        self.chars_count_in_links = 0
        self.tags_count = 0
        self.class_type = ""

    def freeze(self) -> None:
        self.text = Paragraph.text.fget(self)


class _ParagraphMaker(ParagraphMaker):
    """jusText's paragraph splitter, fed by a direct walk over the tree instead of lxml.sax events."""

    def _start_new_pragraph(self) -> None:  # jusText's spelling
        paragraph = self.paragraph
        if paragraph is not None and paragraph.contains_text():
            paragraph.freeze()
            if paragraph.text:  # a lone <br> gives a paragraph of one space, which jusText drops
                self.paragraphs.append(paragraph)
        self.paragraph = _Paragraph(self.path)

    @classmethod
    def make_paragraphs(cls, root: lxml.etree._Element) -> list[_Paragraph]:
        maker = cls()
        for event, element in lxml.etree.iterwalk(root, events=("start", "end")):
            tag = element.tag
            if event == "start":
                if isinstance(tag, str):
                    maker.startElementNS((None, tag), tag, None)
                    if element.text:
                        maker.characters(element.text)
            else:
                if isinstance(tag, str):
                    maker.endElementNS((None, tag), tag)
                if element.tail and element is not root:
                    maker.characters(element.tail)
        maker.endDocument()
        return maker.paragraphs


def _parse(html: str) -> lxml.html.HtmlElement | None:
    # Parsing UTF-8 bytes with the encoding forced keeps a stale <meta charset> or an XML encoding
    # declaration in the already decoded text from changing how it is read. huge_tree: without it libxml2
    # silently drops everything nested deeper than 256 elements (pages with hundreds of unclosed <font>).
    parser = lxml.html.HTMLParser(encoding="utf-8", huge_tree=True)
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
    paragraphs = classified_paragraphs(html, language, replace(DEFAULT_PARAMS, remove_boilerplate=False))
    return [" ".join(p.text.split()) for p in paragraphs if p.class_type != "good"]


def classified_paragraphs(html: str, language: str | None, params: JustextParams = DEFAULT_PARAMS) -> list[_Paragraph]:
    """The page's paragraphs, each with jusText's `class_type` ("good" is content)."""
    if not html or html.isspace():
        return []
    root = _parse(html)
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
    return paragraphs


def _kept_once(paragraphs: Iterable[str]) -> Iterator[str]:
    """Paragraphs in order, a long one repeated verbatim only the first time: some pages carry the article
    twice (a no-script or hidden copy). Short repeats ("Advertisement", a refrain) are left alone."""
    seen: set[str] = set()
    for paragraph in paragraphs:
        if len(paragraph) >= MIN_REPEATED_PARAGRAPH_CHARS:
            if paragraph in seen:
                continue
            seen.add(paragraph)
        yield paragraph
