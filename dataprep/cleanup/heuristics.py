"""The paper's cleanup heuristics, in this order; the first that applies is the drop reason.

  non_english        langdetect's most probable language is not one of `languages` ("all" keeps
                     every language). A text langdetect finds no features in counts as not English.
  javascript_notice  contains "javascript" (any case) and is shorter than 256 characters: the
                     "please enable JavaScript" pages a crawler gets instead of content.
  too_short          shorter than 512 characters.

langdetect (dataprep/text/language.py) is seeded with CleanupConfig.langdetect_seed in every worker, so
a document's language depends only on its text.
"""

from __future__ import annotations

import ftfy

from dataprep.config import CleanupConfig

REASONS = ["non_english", "javascript_notice", "too_short"]
ALL_LANGUAGES = "all"


def keeps_all_languages(config: CleanupConfig) -> bool:
    return ALL_LANGUAGES in config.languages


def language_allowed(language: str | None, config: CleanupConfig) -> bool:
    if keeps_all_languages(config):
        return True
    if language is None:
        return False
    wanted = {code.lower() for code in config.languages}
    return language.lower() in wanted or language.lower().split("-")[0] in wanted


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
