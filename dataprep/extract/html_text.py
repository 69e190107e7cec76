"""HTML page -> its main text, with jusText.

`html_to_text(html, language)` takes an already decoded page and the ISO 639-1 code of its language
(as pycld2 reports it: "en", "de", "ja", "zh-Hant", CLD2's "iw"/"jw" included) and returns the text of
the paragraphs jusText classifies as good, joined with "\\n\\n" (one blank line between paragraphs;
whitespace inside a paragraph is collapsed to single spaces).

Language handling: jusText scores a paragraph by the share of its words that are stopwords of the
page's language, so the stoplist must match the page: the English stoplist empties a German page.
`language` is mapped to jusText's stoplist name ("de" -> "German"). For a language jusText has no
stoplist for (Japanese, Chinese, Thai, ...: scripts without spaces between words, where a stopword share
means nothing) or when `language` is None, jusText runs in its language-independent mode: an empty
stoplist with both stopword thresholds at 0, so paragraphs are judged by length and link density alone.

A page with no parsable content gives "" (the caller counts it as an empty extraction).
"""

from __future__ import annotations

from functools import cache

import justext
import lxml.etree
import lxml.html
from justext.core import ParagraphMaker, classify_paragraphs, preprocessor, revise_paragraph_classification

PARAGRAPH_SEPARATOR = "\n\n"

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


def stoplist_name(language: str | None) -> str | None:
    """jusText's stoplist name for an ISO 639-1 code ("de", "pt-BR", "zh-Hant"), None if it has none."""
    if not language:
        return None
    base = language.strip().lower().replace("_", "-").split("-")[0]
    return STOPLIST_BY_LANGUAGE.get(base)


@cache
def _stoplist(name: str) -> frozenset[str]:
    return frozenset(word.lower() for word in justext.get_stoplist(name))


def _parse(html: str) -> lxml.html.HtmlElement | None:
    # Parsing UTF-8 bytes with the encoding forced keeps a stale <meta charset> or an XML encoding
    # declaration in the already decoded text from changing how it is read.
    parser = lxml.html.HTMLParser(encoding="utf-8")
    try:
        return lxml.html.document_fromstring(html.encode("utf-8", "replace"), parser=parser)
    except lxml.etree.ParserError:  # "Document is empty": nothing to extract
        return None


def html_to_text(html: str, language: str | None) -> str:
    """Main text of a decoded HTML page, paragraphs joined with "\\n\\n"; "" when nothing is kept."""
    if not html or html.isspace():
        return ""
    dom = _parse(html)
    if dom is None:
        return ""
    dom = preprocessor(dom)
    paragraphs = ParagraphMaker.make_paragraphs(dom)

    name = stoplist_name(language)
    if name is None:
        stoplist, stopwords_low, stopwords_high = frozenset(), 0.0, 0.0
    else:
        stoplist, stopwords_low, stopwords_high = _stoplist(name), 0.30, 0.32
    classify_paragraphs(paragraphs, stoplist, stopwords_low=stopwords_low, stopwords_high=stopwords_high)
    revise_paragraph_classification(paragraphs)
    return PARAGRAPH_SEPARATOR.join(p.text for p in paragraphs if p.class_type == "good")
