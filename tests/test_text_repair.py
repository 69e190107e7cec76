"""text/repair.py's fix_text gives ftfy.fix_text's result: on every code point it assumes ftfy leaves
alone, and on real pages, clean and made into mojibake, with entities, carriage returns and markup."""

import gzip
import html as html_module
from pathlib import Path

import ftfy
import pytest

from dataprep.extract.html_text import html_to_text
from dataprep.text import repair

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "html"
# The fixers of ftfy.fix_and_explain that act on characters (fix_encoding and NFC are the other two).
CHARACTER_FIXERS = ("unescape_html", "fix_c1_controls", "fix_latin_ligatures", "fix_character_width", "uncurl_quotes",
                    "fix_line_breaks", "fix_surrogates", "remove_terminal_escapes", "remove_control_chars")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Real pages' extracted text (what the extract stage hands ftfy), and each whole page's source."""
    pages = [gzip.decompress(p.read_bytes()).decode("utf-8") for p in sorted((FIXTURES / "aeb").glob("*.html.gz"))]
    pages.append((FIXTURES / "aussengedanken.de.feuerholz.html").read_text(encoding="utf-8"))
    return [html_to_text(page, None) for page in pages] + pages


def test_every_character_outside_the_touched_set_is_left_alone_by_every_fixer():
    untouched = "".join(
        c for c in map(chr, range(0x110000))
        if not repair._TOUCHED_RE.match(c)
    )
    assert len(untouched) > 1_000_000
    for name in CHARACTER_FIXERS:
        assert ftfy.FIXERS[name](untouched) == untouched, name
    # and the touched characters are touched: each changes under some fixer on its own, but "&" (an entity
    # needs more) and the five C1 characters windows-1252 leaves undefined (fix_c1_controls keeps them)
    alone = {c for c in repair.OTHER_TOUCHED | repair.CURLY_QUOTES
             if not any(ftfy.FIXERS[name](f"a{c}b") != f"a{c}b" for name in CHARACTER_FIXERS)}
    assert alone == set("&\x81\x8d\x8f\x90\x9d")


def test_same_as_ftfy_on_real_pages(texts):
    assert any("\u2019" in t for t in texts) and any(not t.isascii() for t in texts)
    changed = 0
    for text in texts:
        variants = [
            text,
            text.encode("utf-8").decode("windows-1252", errors="replace"),  # mojibake, as a misread page has it
            text.encode("utf-8").decode("latin-1"),
            html_module.escape(text),  # entities
            text.replace("\n", "\r\n"),
            "\n".join(line[::-1] for line in text.split("\n")),  # the same characters in other orders
        ]
        for variant in variants:
            expected = ftfy.fix_text(variant)
            assert repair.fix_text(variant) == expected
            changed += expected != variant
    assert changed >= 4 * len(texts)  # ftfy had work to do on most of them


@pytest.mark.parametrize("text", [
    "sÃ³ voilÃ le travail",  # mojibake in one line
    "first line\nÃ  second line starts with the anchored pattern",
    "a \u2018quoted\u2019 word and \u201cmore\u201d",  # curly quotes only
    "caf\u0065\u0301 (not NFC) and \u2019",  # NFC changes it
    "P&EACUTE;REZ &amp; <b>\n&amp; after a tag",  # entities; "<" turns unescaping off from its line on
    "\ufb01ne \uff21 \x1b[31mred\x1b[0m \x00\x85end\u2028",  # ligature, width, terminal escape, controls, separators
    "",
])
def test_same_as_ftfy_on_each_kind_of_fix(text):
    assert repair.fix_text(text) == ftfy.fix_text(text)
