"""The one XHTML sanitiser: any HTML fragment in, valid XHTML5 flow content out.

``sanitize_fragment(html)`` is the public door (e.g. showing a forwarded email's
HTML safely). The cleaner runs ``Sanitizer`` on the article it keeps
(``core.clean.xhtml``), the EPUB writer on every chapter body (``core.epub``),
with the book's image files, so what EPUBCheck enforces is written once:
elements and attributes XHTML5 allows, their content models, unique ids,
links that are valid URLs or removed, images that exist in the book.
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from lxml import etree

from inbox_pipeline.core.language import language_tag

# Characters XML 1.0 forbids (lxml refuses them), plus non-characters.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold."""
    return _XML_INVALID.sub("", text)


_CHAR_REF = re.compile(r"&#(?:[xX]([0-9A-Fa-f]{1,8})|([0-9]{1,10}));?")


def _char_ref(match: re.Match[str]) -> str:
    code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
    if 0x80 <= code <= 0x9F:  # what HTML does: these are windows-1252 (&#150; is an en dash)
        try:
            return bytes([code]).decode("cp1252")
        except UnicodeDecodeError:
            return ""
    if code > 0x10FFFF or _XML_INVALID.match(chr(code)):
        return ""  # not a character XML can hold, even escaped
    return match.group(0)


# Controls (C0 but whitespace, C1), and the marks that reorder text (U+202E shows "evil" as
# "live"): metadata is one plain line, and a reading system's library list obeys them.
_NOT_METADATA = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\ufeff\ud800-\udfff\ufffe\uffff]"
)


def one_line(value: str | None) -> str:
    """One line of plain text for metadata and headings: no controls, no bidi overrides."""
    return " ".join(_NOT_METADATA.sub("", value or "").split())


VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
# Dropped with their content: active, embedded or head-only content.
DROP = frozenset(
    """script style noscript iframe frame frameset noframes object embed applet form input button select
    textarea option optgroup datalist output canvas svg math audio video source track map area head title
    meta link base template dialog param progress meter""".split()
)
# Renamed to a valid (or simpler) HTML5 element.
RENAME = {
    "center": "div", "main": "div", "header": "div", "footer": "div", "nav": "div", "address": "div",
    "details": "div", "summary": "div", "hgroup": "div", "search": "div", "dir": "ul", "menu": "ul",
    "listing": "pre", "xmp": "pre", "plaintext": "pre", "tt": "code", "strike": "s", "acronym": "abbr",
    "big": "span", "nobr": "span", "blink": "span", "marquee": "span", "time": "span", "data": "span",
    "font": "span", "label": "span", "legend": "span", "fieldset": "div", "bdi": "span",
    "ruby": "span", "rt": "span", "rp": "span",
}
PHRASING = frozenset(
    "a abbr b bdo br cite code del dfn em i img ins kbd mark q s samp small span strong sub sup u var wbr".split()
)
# Elements whose content must be phrasing content.
PHRASING_ONLY = frozenset(PHRASING - {"a", "del", "ins"}) | frozenset("p h1 h2 h3 h4 h5 h6 pre dt".split())
FLOW = frozenset(
    """div p h1 h2 h3 h4 h5 h6 ul ol li dl dt dd table caption thead tbody tfoot tr td th blockquote pre
    figure figcaption hr section article aside""".split()
)
KNOWN = PHRASING | FLOW | {"picture"}
HEADINGS_AND_SECTIONS = frozenset("h1 h2 h3 h4 h5 h6 section article aside".split())
TABLE_SECTIONS = frozenset({"thead", "tbody", "tfoot"})
MAX_DEPTH = 100  # libxml2 (inside many reading systems) refuses XML nested deeper than 256
STRUCTURAL = frozenset({"ul", "ol", "dl", "table", "thead", "tbody", "tfoot", "tr", "figure"})
# No class: the email's classes mean nothing here, the book's own are set after sanitising.
GLOBAL_ATTRS = frozenset({"id", "title", "lang", "dir"})
ELEMENT_ATTRS = {
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start", "reversed", "type"},
    "li": {"value"},
    "bdo": {"dir"},
}
_INTEGER = re.compile(r"^\s*([0-9]{1,6})(?:px)?\s*$")
_SIGNED = re.compile(r"^\s*(-?[0-9]{1,9})\s*$")
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# '[' and ']' are valid only around an IPv6 host (EPUBCheck RSC-020 otherwise); '%' only as an escape.
_URL_SAFE = "/?#@!$&'()*+,;=%~-._:"
# The common case, accepted as is: http(s), a plain host, only URL code points, one '#'.
_PLAIN_URL = re.compile(
    # Possessive, one character per step: linear time on any input.
    r"^https?://[A-Za-z0-9_](?:[A-Za-z0-9_-]|\.(?=[A-Za-z0-9_]))*+(?::[0-9]{1,5})?"
    r"(?:[/?](?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*+)?"
    r"(?:#(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*+)?$"
)
_WRAPPER = "inbox-pipeline-body"
_parsers = threading.local()  # an lxml parser must not be shared between threads


def _html_parser() -> etree.HTMLParser:
    parser = getattr(_parsers, "html", None)
    if parser is None:
        parser = _parsers.html = etree.HTMLParser(
            remove_comments=True, remove_pis=True, no_network=True, default_doctype=False, huge_tree=True
        )
    return parser
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_blank(text: str | None) -> bool:
    return not text or not text.strip()


def _percent(text: str) -> str:
    return _LONE_PERCENT.sub("%25", text)


def clean_url(href: str) -> str | None:
    """An absolute http(s)/mailto URL EPUBCheck accepts (RFC 3986, percent-encoded), or None."""
    href = href.strip()
    if _PLAIN_URL.match(href):
        return href
    scheme = href.split(":", 1)[0].lower() if ":" in href else ""
    if scheme == "mailto":
        rest = href.split(":", 1)[1]
        address = quote(unquote(rest), safe="@!$&'()*+,;=~-._?:/")
        return f"mailto:{address}" if "@" in address else None
    if scheme not in {"http", "https"}:
        return None
    try:
        parts = urlsplit(href)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    if not host or parts.username is not None or parts.password is not None:
        return None
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", host) or host.startswith(".") or ".." in host:
        return None
    netloc = host + (f":{port}" if port is not None else "")
    path = _percent(quote(parts.path, safe=_URL_SAFE)) or "/"
    query = _percent(quote(parts.query, safe=_URL_SAFE))
    fragment = _percent(quote(parts.fragment, safe=_URL_SAFE.replace("#", "")))
    return urlunsplit((scheme, netloc, path, query, fragment))


class Sanitizer:
    """Turns an HTML/XHTML fragment into valid XHTML5 flow content.

    HTML parsing fixes what the parser knows (``<p>`` in ``<p>``, ``<a>`` in
    ``<a>``); this walk fixes the rest of the content model EPUBCheck enforces
    (blocks in phrasing content, list and table structure), keeps only
    attributes valid in XHTML5, makes ids unique and turns references to
    missing files or anchors into plain text.
    """

    def __init__(self, image_names: dict[str, str] | None = None, reserved_ids: Iterable[str] = ()):
        self.image_names = image_names  # src as written in the body -> file name in the book; None: keep src
        self.used_images: list[str] = []
        self.ids: dict[str, str] = {}  # original id -> id in the output
        self.taken: set[str] = set(reserved_ids)
        self.fragment_links: list[tuple[etree._Element, str]] = []

    def parse(self, html: str) -> etree._Element:
        # libxml2's HTML parser treats <div/> as empty (unlike HTML5 browsers), which
        # is what XHTML input from the cleaner means.
        html = xml_safe(html)
        if "&#" in html:
            html = _CHAR_REF.sub(_char_ref, html)
        doc = etree.fromstring(f'<html><body><div id="{_WRAPPER}">{html}</div></body></html>', _html_parser())
        body = doc.find("body")
        root = etree.Element("div")
        if body is not None:
            # Re-parent everything: the wrapper's content, plus anything the parser moved out of it.
            root.text = body.text
            for child in list(body):
                root.append(child)
            for wrapper in root.findall(f"div[@id='{_WRAPPER}']"):
                drop_tag(wrapper)
        return root

    def sanitize(self, root: etree._Element) -> etree._Element:
        # Iterative (emails nest deeply); each element is validated in its parent's
        # context, then its own children are visited.
        stack: list[tuple[etree._Element, bool, bool, bool, int]] = [(root, False, False, False, 0)]
        while stack:
            element, phrasing, in_link, in_th, depth = stack.pop()
            flatten = depth >= MAX_DEPTH and element.tag not in STRUCTURAL
            done: set = set()
            child = element[0] if len(element) else None
            while child is not None:
                previous = child.getprevious()
                if child in done:
                    child = child.getnext()
                    continue
                if flatten and isinstance(child.tag, str) and child.tag not in VOID and child.tag not in DROP:
                    drop_tag(child)  # too deep for some reading systems' XML parsers: keep the text
                    child = previous.getnext() if previous is not None else (element[0] if len(element) else None)
                    continue
                if self._child(element, child, phrasing, in_link, in_th) == "again":
                    # Replaced by its content (or removed): look at what now follows `previous`.
                    child = previous.getnext() if previous is not None else (element[0] if len(element) else None)
                    continue
                if child.tag in STRUCTURAL:
                    self._structure(child, child.tag)
                restart = child.getprevious() is not previous  # content was moved out in front of it
                if child.getparent() is element:
                    if len(child):
                        ctag = child.tag
                        stack.append(
                            (
                                child,
                                phrasing or ctag in PHRASING_ONLY,
                                in_link or ctag == "a",
                                in_th or ctag == "th",
                                depth + 1,
                            )
                        )
                    if not restart:
                        child = child.getnext()
                        continue
                    done.add(child)
                child = previous.getnext() if previous is not None else (element[0] if len(element) else None)
        return root

    def finish(self, root: etree._Element) -> None:
        """Point in-page links at the ids that survived; unwrap links that go nowhere."""
        present = {e.get("id") for e in root.iter() if e.get("id")}
        for element, fragment in self.fragment_links:
            target = self.ids.get(fragment)
            if target is not None and target in present:
                element.attrib["href"] = "#" + target
        for link in list(root.iter("a")):
            if "href" not in link.attrib and "id" not in link.attrib:
                drop_tag(link)
        sources = {image.get("src") for image in root.iter("img")}
        self.used_images = [name for name in self.used_images if name in sources]

    # -- one child in its parent's context -------------------------------------------

    def _child(self, parent, child, phrasing: bool, in_link: bool, in_th: bool) -> str:
        if not isinstance(child.tag, str):  # comment or processing instruction
            drop_tree(child)
            return "again"
        tag = child.tag.lower()
        if tag in DROP:
            drop_tree(child)
            return "again"
        tag = RENAME.get(tag, tag)
        if tag not in KNOWN or tag == "picture":
            drop_tag(child)
            return "again"
        ptag = parent.tag
        # Misplaced structural elements become neutral containers.
        if tag == "li" and ptag not in {"ul", "ol"}:
            tag = "div"
        elif tag in {"dt", "dd"} and ptag != "dl":
            tag = "div"
        elif tag in {"tr", "td", "th", "caption", "thead", "tbody", "tfoot"} and not self._table_context(ptag, tag):
            tag = "div"
        elif tag == "figcaption" and ptag != "figure":
            tag = "div"
        elif tag == "a" and in_link:
            drop_tag(child)
            return "again"
        elif in_th and tag in HEADINGS_AND_SECTIONS:
            tag = "div"  # a header cell may not hold headings or sections
        elif tag == "dfn" and any(a.tag == "dfn" for a in child.iterancestors()):
            tag = "span"  # a definition may not contain another
        elif tag == "table" and any(a.tag == "caption" for a in child.iterancestors()):
            tag = "div"  # nor a table caption a table (its rows and cells become divs too)
        if tag in VOID and (child.text or len(child)):
            _empty_out(child)  # libxml2 does not know every void element (<wbr>text</wbr>)
        if phrasing and tag not in PHRASING:
            # A block inside phrasing content (a <div> in a <span>, a <ul> in an <h2>): keep
            # its text inline, with a line break so paragraphs don't run together.
            if tag == "hr":
                tag = "br"
            else:
                if not is_blank("".join(child.itertext())):
                    child.append(etree.Element("br"))
                drop_tag(child)
                return "again"
        child.tag = tag
        self._attributes(child, tag, parent)
        if tag == "img" and child.getparent() is None:
            return "again"  # the image was dropped
        return "ok"

    @staticmethod
    def _table_context(ptag: str, tag: str) -> bool:
        if tag in {"caption", "thead", "tbody", "tfoot"}:
            return ptag == "table"
        if tag == "tr":
            return ptag in TABLE_SECTIONS or ptag == "table"
        return ptag == "tr"  # td, th

    # -- structure of lists, tables, figures ---------------------------------------

    def _structure(self, element, tag: str) -> None:
        if tag in {"ul", "ol"}:
            self._wrap_strays(element, "li", allowed={"li"})
        elif tag == "dl":
            if not self._valid_dl(element):
                element.tag = "div"  # its dt/dd become divs when visited
        elif tag == "table":
            self._normalize_table(element)
        elif tag in TABLE_SECTIONS:
            self._wrap_strays(element, "tr", allowed={"tr"}, inner="td")
        elif tag == "tr":
            self._wrap_strays(element, "td", allowed={"td", "th"})
        elif tag == "figure":
            captions = [c for c in element if isinstance(c.tag, str) and c.tag.lower() == "figcaption"]
            children = [c for c in element if isinstance(c.tag, str)]
            for caption in captions:
                first_or_last = caption is children[0] or caption is children[-1]
                if caption is not captions[0] or not first_or_last:
                    caption.tag = "div"

    def _wrap_strays(self, element, wrapper: str, *, allowed: set[str], inner: str | None = None) -> None:
        """Put text and elements a list/row may not hold directly into ``wrapper`` elements."""
        if not is_blank(element.text):
            new = etree.Element(wrapper)
            target = etree.SubElement(new, inner) if inner else new
            target.text = element.text
            element.insert(0, new)
        # Whitespace between items stays (valid there): text read off the tree keeps its words apart.
        element.text = " " if element.text else None
        for child in list(element):
            if not isinstance(child.tag, str):
                continue
            ctag = RENAME.get(child.tag.lower(), child.tag.lower())
            tail = child.tail
            child.tail = None
            if ctag not in allowed and ctag not in DROP:
                new = etree.Element(wrapper)
                child.addprevious(new)
                (etree.SubElement(new, inner) if inner and ctag not in {"td", "th"} else new).append(child)
                child = new
            if not is_blank(tail):
                new = etree.Element(wrapper)
                (etree.SubElement(new, inner) if inner else new).text = tail
                child.addnext(new)
                new.tail = " "
            elif tail:
                child.tail = " "

    @staticmethod
    def _valid_dl(element) -> bool:
        # HTML5: groups of one or more dt followed by one or more dd.
        if not is_blank(element.text) or any(not is_blank(c.tail) for c in element):
            return False
        kinds = "".join(
            {"dt": "t", "dd": "d"}.get(c.tag.lower(), "x") for c in element if isinstance(c.tag, str)
        )
        return re.fullmatch(r"(t+d+)*", kinds) is not None

    def _normalize_table(self, table) -> None:
        """Rebuild as caption?, thead?, tbody?, tfoot? with everything else moved out."""
        caption = None
        head: list = []
        body: list = []
        foot: list = []
        before: list = []  # content that may not sit in a table: shown before it
        if not is_blank(table.text):
            span = etree.Element("p")
            span.text = table.text
            before.append(span)
        table.text = None
        for child in list(table):
            tail = child.tail
            child.tail = None
            table.remove(child)
            tag = child.tag.lower() if isinstance(child.tag, str) else ""
            tag = RENAME.get(tag, tag)
            if tag == "caption" and caption is None:
                caption = child
            elif tag in TABLE_SECTIONS:
                self._wrap_strays(child, "tr", allowed={"tr"}, inner="td")
                rows = [r for r in child if isinstance(r.tag, str) and r.tag.lower() == "tr"]
                {"thead": head, "tbody": body, "tfoot": foot}[tag].extend(rows)
            elif tag == "tr":
                body.append(child)
            elif tag in {"td", "th"}:
                row = etree.Element("tr")
                row.append(child)
                body.append(row)
            elif tag in {"colgroup", "col"} or tag in DROP or not tag:
                pass
            else:
                before.append(child)
            if not is_blank(tail):
                span = etree.Element("p")
                span.text = tail
                before.append(span)
        for node in before:
            table.addprevious(node)
        if not (head or body or foot):
            if caption is not None:
                caption.tag = "p"
                table.addprevious(caption)
            drop_tree(table)
            return
        if caption is not None:
            table.append(caption)
        for tag, rows in (("thead", head), ("tbody", body), ("tfoot", foot)):
            if rows:
                section = etree.SubElement(table, tag)
                for row in rows:
                    row.tail = None
                    section.append(row)

    # -- attributes ----------------------------------------------------------------

    def _attributes(self, element, tag: str, parent) -> None:
        attrib = element.attrib
        if not attrib and tag != "img" and tag != "bdo":
            return
        allowed = ELEMENT_ATTRS.get(tag, ())
        old = dict(attrib)
        attrib.clear()
        if tag == "a" and "id" not in old and old.get("name"):
            old["id"] = old["name"]  # old-style anchors are link targets too
        for name, value in old.items():
            name = name.lower() if isinstance(name, str) else name
            if name not in GLOBAL_ATTRS and name not in allowed:
                continue
            if name == "id":
                new_id = self._new_id(value)
                if new_id:
                    attrib["id"] = new_id
            elif name == "lang":
                if language_tag(value, "") == value.strip() and value.strip():
                    attrib["lang"] = value.strip()
            elif name in {"dir"}:
                if value.strip().lower() in {"ltr", "rtl", "auto"}:
                    attrib["dir"] = value.strip().lower()
            elif name in {"class", "title"}:
                if value.strip():
                    attrib[name] = " ".join(value.split()) if name == "class" else value
            elif name in {"width", "height"}:
                match = _INTEGER.match(value)
                if match and 0 < int(match.group(1)) <= 20000:
                    attrib[name] = str(int(match.group(1)))
            elif name in {"colspan", "rowspan"}:
                match = _INTEGER.match(value)
                if match and 1 <= int(match.group(1)) <= 1000:
                    attrib[name] = str(int(match.group(1)))
            elif name == "scope":
                if value.strip().lower() in {"row", "col", "rowgroup", "colgroup"}:
                    attrib["scope"] = value.strip().lower()
            elif name == "start":
                match = _SIGNED.match(value)
                if match:
                    attrib["start"] = str(int(match.group(1)))
            elif name == "value":
                match = _SIGNED.match(value)
                if match and parent.tag == "ol":
                    attrib["value"] = str(int(match.group(1)))
            elif name == "type":
                if value.strip() in {"1", "a", "A", "i", "I"}:
                    attrib["type"] = value.strip()
            elif name == "reversed":
                attrib["reversed"] = "reversed"
            elif name == "href":
                self._href(element, value)
            elif name == "alt":
                attrib["alt"] = " ".join(value.split())
            elif name == "src":
                attrib["src"] = value
        if tag == "img":
            self._image(element)
        elif tag == "bdo" and "dir" not in attrib:
            element.tag = "span"

    def _new_id(self, value: str) -> str | None:
        value = value.strip()
        if not value:
            return None
        if value in self.ids:  # a duplicate: the first one keeps it
            return None
        safe = value if _NCNAME.match(value) else "x-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-")
        candidate, n = safe, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{safe}-{n}"
        self.taken.add(candidate)
        self.ids[value] = candidate
        return candidate

    def _href(self, element, value: str) -> None:
        value = value.strip()
        if value.startswith("#"):
            self.fragment_links.append((element, unquote(value[1:])))
            return
        url = clean_url(value)
        if url is not None:
            element.attrib["href"] = url

    def _image(self, element) -> None:
        src = (element.attrib.pop("src", "") or "").strip()
        name = (src or None) if self.image_names is None else self.image_names.get(normalize_src(src))
        if name is None:
            # Remote or missing images are not allowed in an EPUB: keep only the alt text.
            alt = " ".join((element.attrib.get("alt") or "").split())
            if alt and element.getparent() is not None:
                _replace_with_text(element, f"[{alt}]")
            else:
                drop_tree(element)
            return
        # src and alt (required in XHTML5) first, then width/height.
        attrs = dict(element.attrib)
        element.attrib.clear()
        element.attrib["src"] = name
        element.attrib["alt"] = attrs.pop("alt", "")
        element.attrib.update(attrs)
        if name not in self.used_images:
            self.used_images.append(name)



def normalize_src(src: str) -> str:
    src = unquote(src.strip())
    if src.startswith("./"):
        src = src[2:]
    return posixpath.normpath(src) if src else ""


def _add_text_before(element, text: str | None) -> None:
    """Append ``text`` to whatever text precedes ``element`` in its parent."""
    if not text:
        return
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + text
    else:
        parent = element.getparent()
        parent.text = (parent.text or "") + text


def drop_tree(element) -> None:
    """Remove an element and its content, keeping the text after it."""
    parent = element.getparent()
    if parent is None:
        return
    _add_text_before(element, element.tail)
    parent.remove(element)


def drop_tag(element) -> None:
    """Replace an element by its content (text, children, then its tail)."""
    parent = element.getparent()
    if parent is None:
        return
    _add_text_before(element, element.text)
    children = list(element)
    tail = element.tail
    element.tail = None
    for child in children:
        element.addprevious(child)  # moves the child (and its tail) in front
    _add_text_before(element, tail)
    parent.remove(element)


def _empty_out(element) -> None:
    """Move an element's content after it, leaving it empty."""
    tail, element.tail = element.tail, None
    text, element.text = element.text, None
    anchor = element
    for child in list(element):
        anchor.addnext(child)
        anchor = child
    anchor.tail = (anchor.tail or "") + (tail or "")
    element.tail = (text or "") + (element.tail or "") if anchor is not element else (text or "") + (tail or "")


def _replace_with_text(element, text: str) -> None:
    span = etree.Element("span")
    span.text = text
    span.tail = element.tail
    element.tail = None
    element.addprevious(span)
    drop_tree(element)


def serialize(element) -> str:
    """The element as XML text, with no self-closed non-void elements."""
    # <td/>, <a id="x"/>: valid XML, but some reading systems parse chapters as HTML.
    for node in element.iter():
        if node.text is None and not len(node) and node.tag not in VOID:
            node.text = ""
    return etree.tostring(element, encoding="unicode", method="xml")


def sanitize_fragment(html: str, *, images: dict[str, str] | None = None) -> str:
    """``html`` as a valid XHTML5 body fragment (a string of flow content).

    ``images`` maps ``src`` values to the file names they have in a book, and
    images not in it are dropped (their alt text kept); None keeps every
    ``src`` as written.
    """
    sanitizer = Sanitizer(images)
    root = sanitizer.sanitize(sanitizer.parse(html or ""))
    sanitizer.finish(root)
    return serialize(root)[len("<div>") : -len("</div>")]
