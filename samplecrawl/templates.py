"""Real pages turned into page templates: the page's own navigation, footers, ads and markup, with its
article taken out and slots left for new content.

The article is found with the page's gold article body when there is one (elements whose whole text
lies inside the gold text are removed), else as the element holding the most paragraph text. Long inline
scripts, styles and SVGs are taken out so that pages come to realistic sizes; they are kept as the
real CSS and JavaScript bodies the crawl serves as non-HTML responses.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import lxml.etree
import lxml.html

from .text_sources import collapse, visible_lines

SLOT_RE = re.compile(r"@@samplecrawl-slot-(\w+)@@")
SLOTS = ("LANG", "CHARSET_META", "TITLE", "H1", "CONTENT")

MAX_INLINE_SCRIPT_CHARS = 600
MAX_INLINE_STYLE_CHARS = 3000
MAX_SVG_CHARS = 1500
MAX_ATTRIBUTE_CHARS = 400
MIN_ASSET_CHARS = 1000
MAX_ASSET_CHARS = 60_000
MIN_TEMPLATE_BYTES = 2_000
MAX_TEMPLATE_BYTES = 48_000
# A template may keep some long text (a footer notice, a teaser) but not the article it came from.
MAX_RESIDUAL_PROSE_CHARS = 2_000
RESIDUAL_LINE_CHARS = 80

_CONTENT_TAGS = {"p", "blockquote", "h2", "h3", "h4", "h5", "h6", "pre", "figure", "ul", "ol", "table"}
_DROP_META = re.compile(r"^(og:(url|title|description)|twitter:(title|description)|description)$", re.I)


def slot(name: str) -> str:
    return f"@@samplecrawl-slot-{name}@@"


@dataclass(frozen=True)
class Template:
    """A real page with slots. `parts` alternates literal HTML and slot names (even indexes literal)."""

    name: str  # where it came from, e.g. "html/aeb_html/0a1b....html.gz"
    host: str
    language: str
    site_name: str
    parts: tuple[str, ...]  # the full page: LANG, CHARSET_META, TITLE, H1 (optional), CONTENT
    bare_parts: tuple[str, ...]  # the page's head with an empty body: LANG, CHARSET_META, TITLE, CONTENT
    literal_bytes: int  # UTF-8 size of the literal parts of `parts`

    @property
    def has_h1(self) -> bool:
        return "H1" in self.parts[1::2]

    def render(self, values: dict[str, str], bare: bool = False) -> str:
        parts = self.bare_parts if bare else self.parts
        out = list(parts)
        for i in range(1, len(out), 2):
            out[i] = values[out[i]]
        return "".join(out)


@dataclass(frozen=True)
class Assets:
    scripts: tuple[str, ...]
    styles: tuple[str, ...]


def _split_slots(html_text: str) -> tuple[str, ...]:
    return tuple(SLOT_RE.split(html_text))


def _trim(doc: lxml.html.HtmlElement, scripts: list[str], styles: list[str]) -> None:
    """Take out what makes real pages huge without being page structure; keep the big bodies as assets."""
    for node in doc.xpath("//comment() | //processing-instruction()"):
        if node.getparent() is not None:
            node.drop_tree()
    for script in doc.xpath("//script"):
        body = script.text or ""
        if script.get("type", "").lower() == "application/ld+json":
            script.drop_tree()  # structured data repeats the original headline and article
        elif len(body) > MAX_INLINE_SCRIPT_CHARS:
            if script.get("src") is None and MIN_ASSET_CHARS <= len(body) <= MAX_ASSET_CHARS:
                scripts.append(body.strip())
            script.drop_tree()
    for style in doc.xpath("//style"):
        body = style.text or ""
        if len(body) > MAX_INLINE_STYLE_CHARS:
            if len(body) <= MAX_ASSET_CHARS:
                styles.append(body.strip())
            style.drop_tree()
    for svg in doc.xpath("//*[local-name()='svg']"):
        if len(lxml.etree.tostring(svg)) > MAX_SVG_CHARS:
            svg.drop_tree()
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in list(element.attrib.items()):
            if len(value) > MAX_ATTRIBUTE_CHARS:
                del element.attrib[name]


def _drop_declarations(doc: lxml.html.HtmlElement) -> None:
    """Charset declarations are the crawl's to set; canonical URLs and titles in meta tags would name
    the original article."""
    for meta in doc.xpath("//meta"):
        equiv = (meta.get("http-equiv") or "").lower()
        prop = meta.get("property") or meta.get("name") or ""
        if meta.get("charset") is not None or equiv in ("content-type", "charset") or _DROP_META.match(prop):
            meta.drop_tree()
    for link in doc.xpath("//link[@rel='canonical' or @rel='amphtml' or @rel='shortlink']"):
        link.drop_tree()


def _gold_elements(body: lxml.html.HtmlElement, gold: str) -> list[lxml.html.HtmlElement]:
    """Outermost elements whose whole text lies inside the gold article text."""
    found = []

    def visit(element):
        if not isinstance(element.tag, str) or element.tag in ("script", "style"):
            return
        text = collapse(element.text_content())
        if len(text) >= 20 and text in gold:
            found.append(element)
            return
        for child in element:
            visit(child)

    visit(body)
    return found


def _densest_container_elements(body: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """Content-like elements under the element whose direct <p> children hold the most text."""
    best, best_chars = None, 0
    for element in body.iter():
        if not isinstance(element.tag, str):
            continue
        chars = sum(len(child.text_content()) for child in element if child.tag == "p")
        if chars > best_chars:
            best, best_chars = element, chars
    if best is None:
        return []
    found = []
    for element in best.iter():
        if element is best or not isinstance(element.tag, str) or element.tag not in _CONTENT_TAGS:
            continue
        if any(ancestor in found for ancestor in element.iterancestors()):
            continue
        found.append(element)
    return found


_NOT_MAIN_TAGS = {
    "a",
    "li",
    "nav",
    "header",
    "footer",
    "aside",
    "button",
    "label",
    "select",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "span",
    "ul",
    "ol",
    "figure",
    "noscript",
}
_NOT_MAIN_NAMES = re.compile(r"nav|menu|footer|header|sidebar|comment|breadcrumb|related|promo|widget", re.I)


def _is_main_flow(marker: lxml.html.HtmlElement) -> bool:
    """Content must go where an article goes, not into a link, list, table or a navigation block."""
    for ancestor in marker.iterancestors():
        if ancestor.tag in ("body", "html"):
            return True
        names = f"{ancestor.get('id', '')} {ancestor.get('class', '')}"
        if ancestor.tag in _NOT_MAIN_TAGS or _NOT_MAIN_NAMES.search(names):
            return False
    return True


def _site_name(title: str) -> str:
    """'Headline | The Site' -> 'The Site'; '' when the title names no site."""
    for separator in (" | ", " - ", " – ", " — ", " :: ", " · "):
        if separator in title:
            name = title.rsplit(separator, 1)[1].strip()
            if 0 < len(name) <= 40:
                return name
    return ""


def _set_title(doc: lxml.html.HtmlElement, head: lxml.html.HtmlElement) -> str:
    titles = doc.xpath("//title")
    original = collapse(titles[0].text_content()) if titles else ""
    for extra in titles[1:]:
        extra.drop_tree()
    if titles:
        title = titles[0]
        for child in list(title):
            title.remove(child)
    else:
        title = lxml.html.Element("title")
        head.insert(0, title)
    title.text = slot("TITLE")
    return _site_name(original)


def _serialize(doc: lxml.html.HtmlElement, doctype: str) -> str:
    text = lxml.html.tostring(doc, encoding="unicode", doctype=doctype)
    return text.replace("<samplecrawl-content></samplecrawl-content>", slot("CONTENT"))


def make_template(page: str, name: str, host: str, language: str, gold: str | None = None):
    """A Template and the page's large inline scripts and styles, or (None, assets) when the page does not
    make a usable template (no article found, too big or too small, article text left over)."""
    scripts: list[str] = []
    styles: list[str] = []
    page = re.sub(r"^\s*<\?xml[^>]*\?>", "", page)
    try:
        doc = lxml.html.document_fromstring(page)
    except (lxml.etree.ParserError, ValueError):
        return None, Assets((), ())
    doctype = doc.getroottree().docinfo.doctype or "<!DOCTYPE html>"
    _trim(doc, scripts, styles)
    assets = Assets(tuple(scripts), tuple(styles))
    head, body = doc.find("head"), doc.find("body")
    if head is None or body is None:
        return None, assets
    _drop_declarations(doc)
    site_name = _site_name_or_host(_set_title(doc, head), host)
    doc.set("lang", slot("LANG"))
    head.text = slot("CHARSET_META") + "\n" + (head.text or "")

    bare = copy.deepcopy(doc)
    bare_body = bare.find("body")
    for child in list(bare_body):
        bare_body.remove(child)
    bare_body.text = "\n"
    bare_body.append(lxml.html.Element("samplecrawl-content"))
    bare_parts = _split_slots(_serialize(bare, doctype))

    article = _gold_elements(body, collapse(gold)) if gold else _densest_container_elements(body)
    if not article:
        return None, assets
    marker = lxml.html.Element("samplecrawl-content")
    article[0].addprevious(marker)
    if not _is_main_flow(marker):
        return None, assets
    for element in article:
        element.drop_tree()
    headings = body.xpath(".//h1")
    if headings:
        heading = headings[0]
        for child in list(heading):
            heading.remove(child)
        heading.text = slot("H1")
    parts = _split_slots(_serialize(doc, doctype))
    literal = "".join(parts[0::2])
    size = len(literal.encode())
    residual = sum(len(line) for line in visible_lines(literal) if len(line) >= RESIDUAL_LINE_CHARS)
    if not MIN_TEMPLATE_BYTES <= size <= MAX_TEMPLATE_BYTES or residual > MAX_RESIDUAL_PROSE_CHARS:
        return None, assets
    if parts[1::2].count("CONTENT") != 1:
        return None, assets
    template = Template(name, host, language, site_name, parts, bare_parts, size)
    return template, assets


def _site_name_or_host(site_name: str, host: str) -> str:
    return site_name or host.removeprefix("www.")
