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
_WS_CHARS = " \t\r\n\f"


def serialise(body: Element) -> str:
    """Make ``body`` plain XHTML in place and return its content as an XML fragment."""
    anchors = _anchor_targets(body)
    _unwrap_unknown(body)
    # What is left of layout tables is mostly divs that wrap one block each. Unwrapping the
    # ones that qualify already (no id, no text) spares the passes below most of the tree;
    # the last pass would unwrap them all the same, and the rest then.
    _unwrap_wrapper_divs(body)
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


def _unwrap_unknown(body: Element) -> None:
    """Unwrap unknown and presentational wrappers (span, font, o:p ...), in one call in C."""
    present = {el.tag for el in body.iterdescendants()}
    unwrap = [tag for tag in present if isinstance(tag, str) and RENAME.get(tag, tag) not in ALLOWED]
    if unwrap:
        etree.strip_tags(body, *unwrap)
    if any(not isinstance(tag, str) for tag in present):
        for el in list(body.iterdescendants()):
            if not isinstance(el.tag, str):
                drop_tree(el)


def _whitelist(body: Element, anchors: set[str]) -> None:
    """Rename to XHTML tags and keep only the attributes XHTML readers use."""
    seen_ids: set[str] = set()
    for el in body.iterdescendants():
        tag = el.tag
        renamed = RENAME.get(tag)
        if renamed is not None:
            el.tag = tag = renamed
        attrib = el.attrib
        if not attrib:
            continue  # an <img> without attributes has no src: dropped below
        get = attrib.get
        ident = get("id")
        target = (xml_safe(ident) if ident else "") or (xml_safe(get("name") or "") if tag == "a" else None)
        direction = get("dir")
        direction = xml_safe(direction).lower() if direction else ""
        if tag == "a":
            kept = (get("href"), get("title"))
        elif tag == "img":
            kept = (get("src"), get("alt"), get("width"), get("height"))
        elif tag == "td" or tag == "th":
            kept = (get("colspan"), get("rowspan"))
        elif tag == "ol":
            kept = (get("start"),)
        else:
            kept = ()
        attrib.clear()
        if target and target in anchors and _ID.match(target) and target not in seen_ids:
            seen_ids.add(target)
            attrib["id"] = target
        if direction in ("ltr", "rtl"):
            attrib["dir"] = direction
        if tag == "a":
            href, title = (xml_safe(value) if value else "" for value in kept)
            href = _clean_href(href, anchors)
            if href:
                attrib["href"] = href
            if title:
                attrib["title"] = collapse(title)
        elif tag == "img":
            src, alt, width, height = (xml_safe(value) if value else "" for value in kept)
            src = src.strip()
            if src:
                attrib["src"] = src
                attrib["alt"] = collapse(alt)
                for name, value in (("width", width), ("height", height)):
                    value = value.strip().removesuffix("px")
                    if _NUMBER.match(value):
                        attrib[name] = value
        elif kept:  # td, th, ol
            names = ("start",) if tag == "ol" else ("colspan", "rowspan")
            for name, value in zip(names, kept):
                value = xml_safe(value).strip() if value else ""
                if _NUMBER.match(value) and (name == "start" or value != "1"):
                    attrib[name] = value
    for img in list(body.iter("img")):
        if "src" not in img.attrib:
            drop_tree(img)


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
            for child in el.findall("br"):
                drop_tree(child)


def _has_block(el: Element) -> bool:
    return next(el.iterdescendants(*BLOCKS), None) is not None


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


def _needs_collapse(text: str) -> bool:
    """False when _WS would change nothing (single spaces only): five searches in C, no regex."""
    return "  " in text or "\n" in text or "\t" in text or "\r" in text or "\f" in text


def _tidy_text(body: Element) -> None:
    """Collapse whitespace outside <pre>; runs of <br> shrink to two."""
    in_pre = {el for pre in body.iter("pre") for el in pre.iter()}
    ws = _WS.sub
    for el in body.iter():
        text, tail = el.text, el.tail
        # Text is written back only when it changed: each write re-encodes it into the tree.
        # Whitespace-only text (layout tables are full of it) becomes one space without a regex.
        if text:
            if not in_pre or el not in in_pre:
                if not text.strip(_WS_CHARS):
                    new = " "
                else:
                    new = MSO_DEBRIS.sub(" ", text) if "]" in text or ">" in text else text
                    if _needs_collapse(new):
                        new = ws(" ", new)
            elif "]" in text or ">" in text:  # conditional-comment debris ("[endif]-->")
                new = MSO_DEBRIS.sub(" ", text)
            else:
                new = text
            if new != text:
                el.text = new
        if tail:
            if not in_pre or el not in in_pre or el.tag == "pre":
                if not tail.strip(_WS_CHARS):
                    new = " "
                else:
                    new = MSO_DEBRIS.sub(" ", tail) if "]" in tail or ">" in tail else tail
                    if _needs_collapse(new):
                        new = ws(" ", new)
            elif "]" in tail or ">" in tail:
                new = MSO_DEBRIS.sub(" ", tail)
            else:
                new = tail
            if new != tail:
                el.tail = new
    for br in list(body.iter("br")):
        prev = br.getprevious()
        if prev is not None and prev.tag == "br" and not (prev.tail or "").strip():
            before = prev.getprevious()
            if before is not None and before.tag == "br" and not (before.tail or "").strip():
                drop_tree(br)


_WRAPPED = frozenset(("div", "p", "table", "ul", "ol", "blockquote", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "pre"))
_UNWRAP = "inbox-pipeline-unwrap"  # a marker tag, stripped in one call


def _unwrap_wrapper_divs(body: Element) -> None:
    """Unwrap divs that only wrap one other block (no id, no text of their own)."""
    # Innermost first, as unwrapping one at a time would: unwrapping a div whose only child
    # is one block changes neither its parent's child count nor its parent's text, so each
    # div is decided on the untouched tree, looking through inner divs already chosen.
    chosen: list[Element] = []
    for el in reversed(list(body.iter("div"))):
        if el is body or el.get("id") or (el.text or "").strip() or len(el) != 1:
            continue
        child = el[0]  # if itself chosen, what it wraps is a block with a blank tail too
        if child.tag in _WRAPPED and not (child.tail or "").strip():
            chosen.append(el)
    if chosen:
        for el in chosen:
            el.tag = _UNWRAP
        etree.strip_tags(body, _UNWRAP)


def _flatten_divs(body: Element) -> None:
    """Unwrap divs that only wrap one other block: what is left of layout tables."""
    _unwrap_wrapper_divs(body)
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
        if len(el):
            continue
        text = el.text
        if (text and text.strip() and not _DOTS.match(text)) or el.tag in _KEEP_EMPTY or el.get("id"):
            continue
        if el.getparent() is not None:
            drop_tree(el)
    # Fragment links whose target was removed as clutter lose their href.
    fragments = [a for a in body.iter("a") if (a.get("href") or "").startswith("#")]
    if fragments:
        ids = {el.get("id") for el in body.iter() if el.get("id")}
        for a in fragments:
            if a.get("href")[1:] not in ids:
                del a.attrib["href"]
