"""Someone else's HTML made inert, for quoting it in a message we send (a forwarded confirmation).

The same whitelist as the EPUB path (``xhtml.serialise``: known tags only, no
style or event attributes, so nothing positioned, hidden or scripted), after
removing what is never content (scripts, embeds, form controls), unwrapping
forms, dropping every image (a remote image is a read receipt) and every link
that is not http(s) or mailto.
"""

from __future__ import annotations

from lxml import etree

from .dom import drop_tree, parse
from .engine import KILL_TAGS
from .xhtml import serialise

LINK_SCHEMES = ("http://", "https://", "mailto:")
_DROPPED = KILL_TAGS | {"img", "picture", "image"}


def inert_fragment(html: str) -> str:
    """``html`` as an XHTML body fragment with no active content, forms, images or foreign links."""
    root = parse(html)
    if root is None:
        return ""
    body = root.find("body")
    if body is None:
        body = root
    for el in [el for el in body.iterdescendants() if isinstance(el.tag, str) and el.tag in _DROPPED]:
        if el.getparent() is not None:
            drop_tree(el)
    etree.strip_tags(body, "form", "fieldset", "label")
    for link in body.iter("a", "area"):
        href = "".join((link.get("href") or "").split()).lower()
        if not href.startswith(LINK_SCHEMES):
            link.attrib.pop("href", None)
    return serialise(body)
