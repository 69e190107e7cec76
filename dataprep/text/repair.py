"""ftfy's text repair (`ftfy.fix_text` with its defaults), without its cost where it changes nothing.

ftfy fixes a text segment by segment (lines, up to and including each "\\n"), running a dozen fixers on
each, each a pass over the segment, until nothing changes. On clean UTF-8 text almost every fixer has
nothing to do. `fix_text` gives exactly what `ftfy.fix_text` gives (tests compare the two on real
pages and on every code point), with ftfy's segmentation and its rule that a "<" turns HTML unescaping
off for the rest of the text, and hands ftfy only the segments where a fixer may act. A segment is
left as it is when it holds none of the characters the fixers act on ("&" for HTML entities, control
and C1 characters, Latin ligatures, half- and full-width forms, curly quotes, line and paragraph
separators, carriage returns, surrogates), is NFC-normalised, and ftfy's mojibake test
(`ftfy.badness.is_bad`; never true of ASCII) finds nothing. A segment whose only such characters are
curly quotes, and that passes both other tests before and after they are straightened, gets them
straightened (ftfy's uncurl_quotes), as ftfy would do.
"""

from __future__ import annotations

import re
import unicodedata

from ftfy import TextFixerConfig, fix_and_explain
from ftfy.badness import is_bad
from ftfy.chardata import CONTROL_CHARS, LIGATURES, WIDTH_MAP
from ftfy.fixes import uncurl_quotes

_CONFIG = TextFixerConfig(explain=False)
CURLY_QUOTES = frozenset("\u02bc\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f")  # what uncurl_quotes replaces
OTHER_TOUCHED = (
    frozenset("&")  # unescape_html
    | frozenset("\x1b")  # remove_terminal_escapes (also a control character)
    | frozenset("\r\u2028\u2029\x85")  # fix_line_breaks
    | {chr(c) for c in range(0x80, 0xA0)}  # fix_c1_controls
    | {chr(c) for c in (*CONTROL_CHARS, *LIGATURES, *WIDTH_MAP)}  # remove_control_chars, ligatures, widths
)


def _char_class(chars: frozenset[str]) -> re.Pattern:
    return re.compile("[" + "".join(re.escape(c) for c in sorted(chars)) + "\ud800-\udfff]")  # + fix_surrogates


_TOUCHED_RE = _char_class(OTHER_TOUCHED | CURLY_QUOTES)
_TOUCHED_NOT_QUOTES_RE = _char_class(OTHER_TOUCHED)


def _is_clean(segment: str) -> bool:
    """NFC and no mojibake by ftfy's test: fix_encoding and the normalisation leave the segment alone."""
    return segment.isascii() or (unicodedata.is_normalized("NFC", segment) and not is_bad(segment))


def fix_segment(segment: str, config: TextFixerConfig = _CONFIG) -> str:
    """ftfy.fix_and_explain(segment, config).text for ftfy's default fixes, short-cut where it is certain:
    a segment nothing acts on is returned as it is; one where only curly quotes are to fix gets them
    straightened, when ftfy's mojibake test finds nothing before or after (ftfy's loop runs its fixers
    again on the straightened text and stops when nothing changes)."""
    if not _TOUCHED_RE.search(segment):
        return segment if _is_clean(segment) else fix_and_explain(segment, config).text
    if not _TOUCHED_NOT_QUOTES_RE.search(segment) and _is_clean(segment):
        straight = uncurl_quotes(segment)
        if _is_clean(straight):
            return straight
    return fix_and_explain(segment, config).text


def fix_text(text: str) -> str:
    """ftfy.fix_text(text), the same result, with ftfy run only on the segments it may change."""
    if text.isascii() and not _TOUCHED_RE.search(text):  # then no segment of it needs fixing
        return text
    config = _CONFIG
    out = []
    pos = 0
    while pos < len(text):  # ftfy.fix_text's segmentation
        end = text.find("\n", pos) + 1 or len(text)
        end = min(end, pos + config.max_decode_length)
        segment = text[pos:end]
        if config.unescape_html == "auto" and "<" in segment:
            config = config._replace(unescape_html=False)
        out.append(fix_segment(segment, config))
        pos = end
    return "".join(out)
