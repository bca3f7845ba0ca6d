"""Whitelist the cleaned tree to plain XHTML and serialise it as a body fragment."""

from __future__ import annotations

import re
from urllib.parse import quote

from lxml import etree

from .dom import Element, collapse, drop_tag, drop_tree, xml_safe
from .phrases import MSO_DEBRIS

ALLOWED = frozenset(
    "p div br hr h1 h2 h3 h4 h5 h6 ul ol li dl dt dd blockquote pre code em strong b i u s sub sup "
    "small a img figure figcaption table thead tbody tfoot tr th td caption cite q abbr mark del ins "
    "kbd samp var".split()
)
RENAME = {
    "center": "div", "section": "div", "article": "div", "header": "div", "footer": "div",
    "main": "div", "aside": "div", "nav": "div", "address": "div", "strike": "s", "tt": "code",
    "listing": "pre", "xmp": "pre", "plaintext": "pre", "dir": "ul", "menu": "ul", "big": "strong",
}
BLOCKS = frozenset("p div hr h1 h2 h3 h4 h5 h6 ul ol dl blockquote pre figure table".split())
HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
# Elements whose content model is phrasing only: a block inside them is invalid XHTML.
PHRASING_ONLY = frozenset("p h1 h2 h3 h4 h5 h6 pre em strong b i u s sub sup small code cite q abbr mark kbd samp var".split())
_KEEP_EMPTY = frozenset({"br", "hr", "img", "td", "th", "tr"})
_NUMBER = re.compile(r"^\d{1,4}$")
_ID = re.compile(r"^[A-Za-z_][\w.-]{0,80}$")
_SAFE_URL = ":/?#[]@!$&'()*+,;=%~-._"
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")
_WS = re.compile(r"[ \t\r\n\f]+")


def serialise(body: Element) -> str:
    """Make ``body`` plain XHTML in place and return its content as an XML fragment."""
    anchors = _anchor_targets(body)
    _whitelist(body, anchors)
    _fix_content_models(body)
    _tidy_text(body)
    _drop_empty(body)
    _flatten_divs(body)
    body.tag = "div"
    body.attrib.clear()
    body.tail = None
    out = etree.tostring(body, encoding="unicode", method="xml")
    if out.endswith("/>"):
        return ""
    return out[len("<div>"):-len("</div>")].strip()


def _anchor_targets(body: Element) -> set[str]:
    """Fragment ids that some link in the document points at."""
    targets = set()
    for a in body.iter("a"):
        href = (a.get("href") or "").strip()
        if href.startswith("#") and len(href) > 1:
            targets.add(href[1:])
    return targets


def _whitelist(body: Element, anchors: set[str]) -> None:
    seen_ids: set[str] = set()
    for el in list(body.iterdescendants()):
        tag = el.tag
        if not isinstance(tag, str):
            drop_tree(el)
            continue
        tag = RENAME.get(tag, tag)
        if tag not in ALLOWED:
            drop_tag(el)  # unknown or presentational wrapper: keep its content
            continue
        el.tag = tag
        if not el.attrib:
            if tag == "img":
                drop_tree(el)
            continue
        attrs = {k: xml_safe(v) for k, v in el.attrib.items()}
        el.attrib.clear()
        target = attrs.get("id") or (attrs.get("name") if tag == "a" else None)
        if target and target in anchors and _ID.match(target) and target not in seen_ids:
            seen_ids.add(target)
            el.set("id", target)
        if attrs.get("dir", "").lower() in ("ltr", "rtl"):
            el.set("dir", attrs["dir"].lower())
        if tag == "a":
            href = _clean_href(attrs.get("href", ""), anchors)
            if href:
                el.set("href", href)
            if attrs.get("title"):
                el.set("title", collapse(attrs["title"]))
        elif tag == "img":
            src = (attrs.get("src") or "").strip()
            if not src:
                drop_tree(el)
                continue
            el.set("src", src)
            el.set("alt", collapse(attrs.get("alt") or ""))
            for name in ("width", "height"):
                value = (attrs.get(name) or "").strip().removesuffix("px")
                if _NUMBER.match(value):
                    el.set(name, value)
        elif tag in ("td", "th"):
            for name in ("colspan", "rowspan"):
                value = (attrs.get(name) or "").strip()
                if _NUMBER.match(value) and value != "1":
                    el.set(name, value)
        elif tag == "ol":
            start = (attrs.get("start") or "").strip()
            if _NUMBER.match(start):
                el.set("start", start)


def _clean_href(href: str, anchors: set[str]) -> str | None:
    href = href.strip()
    if href.startswith("#"):
        return href if len(href) > 1 and href[1:] in anchors else None
    if not href.lower().startswith(_LINK_SCHEMES):
        return None  # relative links and javascript: have no target in an EPUB
    return quote(href, safe=_SAFE_URL)


def _fix_content_models(body: Element) -> None:
    """Repair nesting that HTML tolerates and XHTML validators reject."""
    for el in list(body.iterdescendants()):
        parent = el.getparent()
        if parent is None:
            continue
        tag = el.tag
        if tag in PHRASING_ONLY and _has_block(el):
            if tag == "p":
                el.tag = "div"
            elif tag in HEADINGS or tag == "pre":
                for child in [c for c in el.iterdescendants() if c.tag in BLOCKS]:
                    if child.tag == "hr":
                        drop_tree(child)
                    else:
                        drop_tag(child)
            else:
                drop_tag(el)
        elif tag == "a" and next(el.iterancestors("a"), None) is not None:
            drop_tag(el)
        elif tag in ("ul", "ol"):
            _only_items(el)
        elif tag == "li" and parent.tag not in ("ul", "ol"):
            el.tag = "div"
        elif tag in ("dt", "dd") and parent.tag != "dl":
            el.tag = "div"
        elif tag == "dl" and any(c.tag not in ("dt", "dd") for c in el):
            el.tag = "div"
            for c in el:
                if c.tag in ("dt", "dd"):
                    c.tag = "div"
        elif tag == "figcaption" and parent.tag != "figure":
            el.tag = "div"
        elif tag in ("table", "thead", "tbody", "tfoot", "tr"):
            if el.text and el.text.strip():
                el.text = None
            for child in list(el):
                if child.tag == "br":
                    drop_tree(child)


def _has_block(el: Element) -> bool:
    return any(child.tag in BLOCKS for child in el.iterdescendants())


def _only_items(lst: Element) -> None:
    """Lists hold list items only: wrap anything else in one."""
    if lst.text and lst.text.strip():
        item = etree.Element("li")
        item.text, lst.text = lst.text, None
        lst.insert(0, item)
    for child in list(lst):
        if child.tag == "br":
            drop_tree(child)
        elif child.tag != "li":
            item = lst.makeelement("li")
            child.addprevious(item)
            item.append(child)  # the tail moves along with the child
        elif child.tail and child.tail.strip():
            tail, child.tail = child.tail, None
            if len(child):
                child[-1].tail = (child[-1].tail or "") + tail
            else:
                child.text = (child.text or "") + tail


def _tidy_text(body: Element) -> None:
    """Collapse whitespace outside <pre>; runs of <br> shrink to two."""
    in_pre = {el for pre in body.iter("pre") for el in pre.iter()}
    for el in body.iter():
        text, tail = el.text, el.tail
        if text:
            if "]" in text or ">" in text:  # conditional-comment debris ("[endif]-->")
                text = MSO_DEBRIS.sub(" ", text)
            el.text = text if el in in_pre else _WS.sub(" ", text)
        if tail:
            if "]" in tail or ">" in tail:
                tail = MSO_DEBRIS.sub(" ", tail)
            el.tail = _WS.sub(" ", tail) if (el not in in_pre or el.tag == "pre") else tail
    for br in list(body.iter("br")):
        prev = br.getprevious()
        if prev is not None and prev.tag == "br" and not (prev.tail or "").strip():
            before = prev.getprevious()
            if before is not None and before.tag == "br" and not (before.tail or "").strip():
                drop_tree(br)


def _flatten_divs(body: Element) -> None:
    """Unwrap divs that only wrap one other block: what is left of layout tables."""
    for el in reversed(list(body.iter("div"))):
        if el is body or el.get("id") or (el.text or "").strip() or len(el) != 1:
            continue
        child = el[0]
        if child.tag in ("div", "p", "table", "ul", "ol", "blockquote", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "pre") and not (child.tail or "").strip():
            drop_tag(el)
    # Top-level wrappers around the whole article.
    while len(body) == 1 and body[0].tag == "div" and not (body.text or "").strip() and not (body[0].tail or "").strip() and not body[0].get("id"):
        drop_tag(body[0])


_DOTS = re.compile(r"^[\s|·•]+$")


def _drop_empty(body: Element) -> None:
    """Remove elements left with no text and no image, innermost first."""
    # <br> at the very start or end of a block only adds blank lines.
    for br in list(body.iter("br")):
        parent = br.getparent()
        if parent is None or parent.tag in ("td", "th"):
            continue
        if br.getprevious() is None and not (parent.text or "").strip():
            drop_tree(br)
        elif br.getnext() is None and not (br.tail or "").strip():
            drop_tree(br)
    for el in reversed(list(body.iterdescendants())):
        if el.tag in _KEEP_EMPTY or el.getparent() is None or el.get("id"):
            continue
        if len(el) or ((el.text or "").strip() and not _DOTS.match(el.text)):
            continue
        drop_tree(el)
    # Fragment links whose target was removed as clutter lose their href.
    ids = {el.get("id") for el in body.iter() if el.get("id")}
    for a in body.iter("a"):
        href = a.get("href") or ""
        if href.startswith("#") and href[1:] not in ids:
            del a.attrib["href"]
