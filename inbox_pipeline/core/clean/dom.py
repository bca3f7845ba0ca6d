"""Parsing and small tree helpers shared by the cleaning steps."""

from __future__ import annotations

import re
from collections.abc import Callable

from lxml import etree

# Characters XML 1.0 forbids, and invisible fillers that preheaders pad themselves with.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_INVISIBLE = re.compile("[\u200b\u200c\u2060\ufeff\u034f\u00ad\u180e\u2007\u200e\u200f]")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*>", re.IGNORECASE)
_WS = re.compile(r"[ \t\r\n\f\xa0\u2028\u2029\u3000]+")

# lxml.etree's parser, not lxml.html's: its element class lookup costs a call per element.
_PARSER = etree.HTMLParser(
    remove_comments=True, remove_pis=True, no_network=True, encoding="utf-8", huge_tree=True
)

Element = etree._Element

BLOCK_TAGS = frozenset(
    "p div td th li h1 h2 h3 h4 h5 h6 blockquote pre table tr tbody thead tfoot center section "
    "article header footer ul ol dl dt dd figure figcaption body main aside nav address hr caption "
    "form fieldset".split()
)


_CHAR_REF = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|(zwnj|shy|ZeroWidthSpace|NoBreak|lrm|rlm));?")


def _drop_bad_reference(match: re.Match[str]) -> str:
    """Character references to forbidden or invisible characters vanish before parsing."""
    if match.group(3):
        return ""
    try:
        char = chr(int(match.group(1)) if match.group(1) else int(match.group(2), 16))
    except (ValueError, OverflowError):
        return ""
    if _XML_ILLEGAL.match(char) or _INVISIBLE.match(char):
        return ""
    return match.group(0)


def parse(html: str) -> Element | None:
    """Parse an HTML string leniently; None when there is nothing to parse."""
    html = _XML_DECL.sub("", html or "", count=1)
    html = _XML_ILLEGAL.sub("", html)
    html = _INVISIBLE.sub("", html)
    if "&" in html:
        html = _CHAR_REF.sub(_drop_bad_reference, html)
    if not html.strip():
        return None
    try:
        root = etree.fromstring(html.encode("utf-8", "surrogatepass"), parser=_PARSER)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None
    return root


def xml_safe(text: str) -> str:
    """Text without the characters XML forbids and the invisible preheader fillers.

    Character references such as ``&#1;`` or ``&zwnj;`` only become characters when parsed,
    so text from the tree is filtered again before it is written back.
    """
    return _INVISIBLE.sub("", _XML_ILLEGAL.sub("", text))


def collapse(text: str) -> str:
    """Whitespace runs (including no-break spaces) to one space."""
    return _WS.sub(" ", text).strip()


_CLIENT_PREFIX = re.compile(r"^(?:m_-?\d+|x_)")


def classes(el: Element) -> list[str]:
    """Lower-cased class tokens, without the prefixes Gmail ("m_123...") and Outlook ("x_") add."""
    value = el.get("class")
    if not value:
        return []
    tokens = value.lower().split()
    if "_" in value:
        tokens = [_CLIENT_PREFIX.sub("", t) for t in tokens]
    return tokens


def prune(root: Element, drop: Callable[[Element], bool]) -> int:
    """Remove every element for which ``drop`` is true (its tail text stays); count them.

    Descendants of a removed element are not visited.
    """
    removed = 0
    stack = [child for child in root if isinstance(child.tag, str)]
    while stack:
        el = stack.pop()
        if drop(el):
            drop_tree(el)
            removed += 1
        else:
            stack.extend(child for child in el if isinstance(child.tag, str))
    return removed


_NOT_ALNUM = re.compile(r"[\W_]+")


def letters(text: str) -> int:
    """How many letters and digits ``text`` holds."""
    return len(_NOT_ALNUM.sub("", text))


def text_of(el: Element) -> str:
    """All the text inside ``el`` (its own tail excluded)."""
    return "".join(el.itertext())


def drop_tree(el: Element) -> None:
    """Remove ``el`` and its content; the text after it stays."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        previous = el.getprevious()
        if previous is None:
            parent.text = (parent.text or "") + el.tail
        else:
            previous.tail = (previous.tail or "") + el.tail
    parent.remove(el)


def drop_tag(el: Element) -> None:
    """Remove ``el`` but keep its content (children and text) in place."""
    parent = el.getparent()
    if parent is None:
        return
    previous = el.getprevious()
    if el.text and isinstance(el.tag, str):
        if previous is None:
            parent.text = (parent.text or "") + el.text
        else:
            previous.tail = (previous.tail or "") + el.text
    if el.tail:
        if len(el):
            last = el[-1]
            last.tail = (last.tail or "") + el.tail
        elif previous is None:
            parent.text = (parent.text or "") + el.tail
        else:
            previous.tail = (previous.tail or "") + el.tail
    index = parent.index(el)
    parent[index : index + 1] = el[:]
