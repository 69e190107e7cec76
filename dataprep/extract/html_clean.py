"""Boilerplate removal on a parsed HTML page, before jusText sees it.

jusText judges each paragraph by its length, link density and stopword share, and a menu, a share bar
or a "related stories" list can pass those tests. The markup usually says what such a block is, so it
is removed first:

- always: elements that never hold visible prose (script, style, head, form controls, embedded media),
  comments and processing instructions;
- unless it holds the article: nav, header, footer, aside, menu, form, figure, figcaption; elements
  with an ARIA landmark role that is not the main content (navigation, banner, contentinfo, ...); and
  elements with a class or id token naming a boilerplate block ("nav", "site-footer", "sidebar-right",
  "share-buttons", "comments", "related", "ad", "newsletter", "cookie-banner", ...).

"Holds the article" means the element contains more than half of the page's paragraph (<p>) text (all
its text when the page has no <p>): pages wrapped whole in a <form> (ASP.NET) or in a
`<div class="content-with-sidebar">` keep their body. <html>, <body>, <main> and <article> are never
removed.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lxml import etree

ALWAYS_REMOVED_TAGS = frozenset({
    "head", "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed", "canvas",
    "video", "audio", "button", "select", "option", "input", "textarea", "dialog",
})
BOILERPLATE_TAGS = frozenset({"nav", "header", "footer", "aside", "menu", "form", "figure", "figcaption"})
BOILERPLATE_ROLES = frozenset({
    "navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "toolbar", "dialog", "alert",
})
NEVER_REMOVED_TAGS = frozenset({"html", "body", "main", "article"})

# A class or id token that is a boilerplate word, optionally with one leading word and any suffix:
# "nav", "main-nav", "footer_links", "sidebar-right", "social-share-bar". "widget" is not in the list:
# page builders (Elementor, Blogger) put it on the blocks that hold the article.
_BOILERPLATE_WORDS = (
    "nav|navbar|navigation|menu|footer|sidebar|share|sharing|social|comments?|related|ads?|advert\\w*|promo"
    "|newsletter|subscribe|cookie\\w*|breadcrumbs?|banner|popup|modal|recommended|signup|outbrain|taboola"
    "|byline|tags|author|caption|toolbar"
)
BOILERPLATE_TOKEN = re.compile(rf"^(?:[a-z0-9]+[-_])?(?:{_BOILERPLATE_WORDS})(?:[-_][\w-]*)?$", re.IGNORECASE)

# Above this share of the page's paragraph text an element is taken to hold the article and is kept.
ARTICLE_SHARE = 0.5


# The text of an element and its descendants (lxml.html's text_content), for any lxml element.
_text_content = etree.XPath("string()", smart_strings=False)


@lru_cache(maxsize=65536)  # pages of a site repeat the same class names on every element
def _value_names_boilerplate(value: str) -> bool:
    return any(BOILERPLATE_TOKEN.match(token) for token in value.split())


def _names_boilerplate(element: etree._Element) -> bool:
    if element.get("role") in BOILERPLATE_ROLES:
        return True
    for attribute in ("class", "id"):
        value = element.get(attribute)
        if value and _value_names_boilerplate(value):
            return True
    return False


def _paragraph_chars(element: etree._Element) -> int:
    return sum(len(_text_content(p)) for p in element.iter("p"))


def _remove(element: etree._Element) -> None:
    """Detach an element and its subtree, keeping its tail text (the text that follows it)."""
    parent = element.getparent()
    tail = element.tail
    if tail and not tail.isspace():
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def _is_attached(element: etree._Element, root: etree._Element) -> bool:
    for ancestor in element.iterancestors():
        if ancestor is root:
            return True
    return False


def remove_boilerplate(root: etree._Element) -> etree._Element:
    """Remove boilerplate elements from a parsed page (in place) and return the root."""
    always: list[etree._Element] = []
    unless_article: list[etree._Element] = []
    for element in root.iter():
        tag = element.tag
        if not isinstance(tag, str):  # comment, processing instruction, entity
            always.append(element)
        elif tag in ALWAYS_REMOVED_TAGS:
            always.append(element)
        elif tag not in NEVER_REMOVED_TAGS and (tag in BOILERPLATE_TAGS or _names_boilerplate(element)):
            unless_article.append(element)

    for element in always:
        if element.getparent() is not None:
            _remove(element)

    page_chars = None
    measure = _paragraph_chars
    for element in unless_article:  # document order: an ancestor comes before its descendants
        if not _is_attached(element, root):  # inside an element already removed
            continue
        if page_chars is None:
            page_chars = _paragraph_chars(root)
            if page_chars == 0:
                measure = lambda e: len(_text_content(e))  # noqa: E731
                page_chars = measure(root)
        if measure(element) > ARTICLE_SHARE * page_chars:
            continue
        _remove(element)
    return root
