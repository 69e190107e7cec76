"""The paper's cleanup heuristics, in DESIGN.md's order; the first that applies is the drop reason.

  non_english        langdetect's most probable language is not one of `languages` ("all" keeps
                     every language). A text langdetect finds no features in counts as not English.
  javascript_notice  contains "javascript" (any case) and is shorter than 256 characters: the
                     "please enable JavaScript" pages a crawler gets instead of content.
  too_short          shorter than 512 characters.

langdetect draws random samples; its seed is fixed (CleanupConfig.langdetect_seed) in every worker
before the first detection, and langdetect reseeds per text, so a document's language depends only on
its text.
"""

from __future__ import annotations

import ftfy
from langdetect import DetectorFactory, detect_langs
from langdetect.lang_detect_exception import LangDetectException

from dataprep.config import CleanupConfig

REASONS = ["non_english", "javascript_notice", "too_short"]
ALL_LANGUAGES = "all"


def seed_langdetect(seed: int) -> None:
    DetectorFactory.seed = seed


def detect_language(text: str) -> str | None:
    """langdetect's most probable language ("en", "de", "zh-cn"), None when it finds nothing to go on."""
    try:
        return detect_langs(text)[0].lang
    except LangDetectException:
        return None


def keeps_all_languages(config: CleanupConfig) -> bool:
    return ALL_LANGUAGES in config.languages


def language_allowed(language: str | None, config: CleanupConfig) -> bool:
    if keeps_all_languages(config):
        return True
    if language is None:
        return False
    wanted = {code.lower() for code in config.languages}
    return language.lower() in wanted or language.lower().split("-")[0] in wanted


def cleanup_reason(text: str, config: CleanupConfig) -> tuple[str | None, str | None]:
    """(the first heuristic that drops the text or None, langdetect's language or None if not run)."""
    language = None if keeps_all_languages(config) else detect_language(text)
    return heuristic_reason(text, language, config), language


def heuristic_reason(text: str, language: str | None, config: CleanupConfig) -> str | None:
    """The first heuristic that drops the text, given its langdetect language; None: kept."""
    if not language_allowed(language, config):
        return "non_english"
    if len(text) < config.javascript_max_chars and "javascript" in text.lower():
        return "javascript_notice"
    if len(text) < config.min_chars:
        return "too_short"
    return None


def fix_text(text: str) -> str:
    return ftfy.fix_text(text)
