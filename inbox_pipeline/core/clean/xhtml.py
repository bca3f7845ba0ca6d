"""The cleaned tree as a plain XHTML body fragment: the one sanitiser (``core.xhtml``), then tidying."""

from __future__ import annotations

import re

from lxml import etree

from inbox_pipeline.core.xhtml import KNOWN, RENAME, Sanitizer

from .dom import Element, drop_tag, drop_tree
from .phrases import MSO_DEBRIS

# What an article keeps of the sanitiser's elements: no spans (email styling) and no
# sectioning of its own (the chapter is the section), so wrapper divs can be flattened.
_UNWRAPPED = frozenset({"span"})
_AS_DIV = {"section": "div", "article": "div", "aside": "div"}
_KEEP_EMPTY = frozenset({"br", "hr", "img", "td", "th", "tr"})
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
    _drop_unlinked_ids(body, anchors)
    sanitizer = Sanitizer()
    sanitizer.sanitize(body)
    sanitizer.finish(body)
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
    """Unwrap what the article does not keep (span, font, o:p ...) in one call in C, keeping its text."""
    present = {el.tag for el in body.iterdescendants()}
    unwrap = [
        tag for tag in present
        if isinstance(tag, str) and (RENAME.get(tag, tag) not in KNOWN or RENAME.get(tag, tag) in _UNWRAPPED)
    ]
    if unwrap:
        etree.strip_tags(body, *unwrap)
    if any(not isinstance(tag, str) for tag in present):
        for el in list(body.iterdescendants()):
            if not isinstance(el.tag, str):
                drop_tree(el)
    for tag, renamed in _AS_DIV.items():
        for el in body.iter(tag):
            el.tag = renamed


def _drop_unlinked_ids(body: Element, anchors: set[str]) -> None:
    """Ids (and old ``<a name>`` anchors) nothing links to are email markup, not article."""
    for el in body.iterdescendants():
        attrib = el.attrib
        if "id" in attrib and attrib["id"] not in anchors:
            del attrib["id"]
        if "name" in attrib and attrib["name"] not in anchors:
            del attrib["name"]


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
