"""Parsing and small tree helpers shared by the cleaning steps."""

from __future__ import annotations

import re

from lxml import etree

# Characters XML 1.0 forbids, and invisible fillers that preheaders pad themselves with.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_INVISIBLE = re.compile("[\u200b\u200c\u2060\ufeff\u034f\u00ad\u180e\u2007\u200e\u200f]")
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\u200b\u200c\u2060\ufeff\u034f\u00ad\u180e\u2007\u200e\u200f]")
# Looked for without a regex (which costs ~3 ns a character on a 300 KB email): control
# characters are deleted from the UTF-8 bytes in C (no multi-byte sequence holds a byte below
# 0x80), the few others found with str.find.
_CONTROL_BYTES = bytes((*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F))
_UNWANTED_NON_ASCII = tuple("\ufffe\uffff\u200b\u200c\u2060\ufeff\u034f\u00ad\u180e\u2007\u200e\u200f")
_SURROGATE = re.compile("[\ud800-\udfff]")
_XML_UNSAFE = re.compile(_XML_ILLEGAL.pattern[:-1] + _INVISIBLE.pattern[1:])
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


def _has_bad_reference(html: str) -> bool:
    """True when some character reference names a forbidden or invisible character."""
    for ref in set(_CHAR_REF.findall(html)):
        if ref[2]:
            return True
        try:
            char = chr(int(ref[0]) if ref[0] else int(ref[1], 16))
        except (ValueError, OverflowError):
            return True
        if _XML_ILLEGAL.match(char) or _INVISIBLE.match(char):
            return True
    return False


def parse(html: str) -> Element | None:
    """Parse an HTML string leniently; None when there is nothing to parse."""
    html = _XML_DECL.sub("", html or "", count=1)
    try:
        data = html.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, from a lenient decode
        html = _SURROGATE.sub("", html)
        data = html.encode("utf-8")
    if len(data.translate(None, _CONTROL_BYTES)) != len(data) or (
        not html.isascii() and any(char in html for char in _UNWANTED_NON_ASCII)
    ):
        html = _UNWANTED.sub("", html)
        data = html.encode("utf-8")
    if "&" in html and _has_bad_reference(html):
        html = _CHAR_REF.sub(_drop_bad_reference, html)
        data = html.encode("utf-8")
    if not html or html.isspace():
        return None
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None
    return root


def ascii_lower(text: str) -> str:
    """``text`` with ASCII letters lower-cased: ten times faster than ``str.lower`` on long
    non-ASCII text, and the same for finding ASCII signatures."""
    if text.isascii():
        return text.lower()
    return text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def xml_safe(text: str) -> str:
    """Text without the characters XML forbids and the invisible preheader fillers.

    Character references such as ``&#1;`` or ``&zwnj;`` only become characters when parsed,
    so text from the tree is filtered again before it is written back.
    """
    return _XML_UNSAFE.sub("", text)


# Characters str.split() splits on but _WS leaves alone (thin spaces, narrow no-break space ...).
_SPLIT_ONLY = re.compile("[\x0b\x1c-\x1f\x85\u1680\u2000-\u200a\u202f\u205f]")


def collapse(text: str) -> str:
    """Whitespace runs (including no-break spaces) to one space."""
    if _SPLIT_ONLY.search(text) is None:
        return " ".join(text.split())  # the same, twice as fast as the regex
    return _WS.sub(" ", text).strip()


_CLIENT_PREFIX = re.compile(r"^(?:m_-?\d+|x_)")


def classes(el: Element) -> list[str]:
    """Lower-cased class tokens, without the prefixes Gmail ("m_123...") and Outlook ("x_") add."""
    return class_tokens(el.get("class"))


def class_tokens(value: str | None) -> list[str]:
    """The tokens of a class attribute's value, as ``classes`` gives them."""
    if not value:
        return []
    tokens = value.lower().split()
    if "_" in value:
        tokens = [_CLIENT_PREFIX.sub("", t) for t in tokens]
    return tokens


_NOT_ALNUM = re.compile(r"[\W_]+")


_ASCII_NOT_ALNUM = bytes(c for c in range(128) if not chr(c).isalnum())


def letters(text: str) -> int:
    """How many letters and digits ``text`` holds."""
    # ASCII punctuation and spaces are deleted in C; the regex only sees what is left.
    if text.isascii():
        return len(text.encode("ascii").translate(None, _ASCII_NOT_ALNUM))
    rest = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_NOT_ALNUM).decode("utf-8", "surrogatepass")
    return len(_NOT_ALNUM.sub("", rest))


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
