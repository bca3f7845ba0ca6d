"""EPUB 3 books for Kindle: one chapter per newsletter, a generated cover, nav + NCX.

``build_epub`` is deterministic (same book, same bytes) and defensive: whatever
the cleaner hands over is re-parsed and repaired here so that every book passes
EPUBCheck with zero errors (see ``_BodySanitizer``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import posixpath
import re
import threading
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ebooklib import epub as ebooklib_epub
from lxml import etree

from inbox_pipeline.core.cover import render_cover
from inbox_pipeline.core.preflight import LANGUAGE_TAG

if TYPE_CHECKING:
    from inbox_pipeline.core.images import EpubImage

# Stable namespace for identifiers derived from Message-IDs (uuid5 needs one).
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "inbox-pipeline.invalid")
COVER_SIZE = (758, 1008)  # 3:4 like Kindle screens; ~3 ms to draw, sharp enough full screen
XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
IMAGE_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif"}


@dataclass(frozen=True)
class Chapter:
    """One newsletter inside a book."""

    title: str
    body_html: str  # an XHTML body fragment
    images: tuple["EpubImage", ...] = ()
    author: str | None = None  # the sender's name
    date: datetime | None = None
    group: str | None = None  # TOC section in digests: the sender or newsletter name
    source_url: str | None = None
    language: str | None = None  # BCP 47; None: the book's language
    message_id: str | None = None  # keeps digest identifiers stable


@dataclass(frozen=True)
class Book:
    identifier: str  # stable, e.g. "urn:uuid:" + uuid5 of the Message-ID
    title: str
    creator: str
    language: str  # BCP 47
    date: datetime
    chapters: tuple[Chapter, ...]
    description: str | None = None
    cover_subtitle: str | None = None
    publisher: str = "inbox-pipeline"
    cover_title: str | None = None  # None: the book's title

    @classmethod
    def for_newsletter(
        cls,
        message_id: str,
        title: str,
        sender: str,
        date: datetime,
        language: str,
        chapter: Chapter,
    ) -> "Book":
        """A book holding one newsletter; its identifier follows from the Message-ID."""
        return cls(
            identifier=identifier_for(message_id),
            title=_text(title) or "Newsletter",
            creator=_text(sender) or "Unknown sender",
            language=language,
            date=date,
            chapters=(chapter,),
            cover_subtitle=_text(sender) or None,
        )

    @classmethod
    def for_digest(
        cls,
        user_label: str,
        period_label: str,
        date: datetime,
        chapters: Sequence[Chapter],
        *,
        language: str | None = None,
    ) -> "Book":
        """Many newsletters in one book, grouped by ``Chapter.group`` in the TOC."""
        chapters = tuple(chapters)
        period = _text(period_label) or "Digest"
        period = period[:1].upper() + period[1:]
        kind = period if period.lower().endswith("digest") else f"{period} digest"
        keys = sorted(_chapter_key(c) for c in chapters)
        identifier = identifier_for("digest\n" + _text(user_label) + "\n" + period + "\n" + "\n".join(keys))
        senders = list(dict.fromkeys(_text(c.group or c.author) for c in chapters if (c.group or c.author)))
        count = f"{len(chapters)} newsletter" + ("" if len(chapters) == 1 else "s")
        subtitle = count + (": " + ", ".join(senders[:4]) + (", …" if len(senders) > 4 else "") if senders else "")
        titles = "; ".join(_text(c.title) for c in chapters)
        return cls(
            identifier=identifier,
            title=f"{kind} — {format_date(date)}",
            creator="inbox-pipeline",
            language=language or _majority_language(chapters),
            date=date,
            chapters=chapters,
            description=(f"For {_text(user_label)}: " if _text(user_label) else "") + titles,
            cover_subtitle=subtitle,
            cover_title=kind,
        )


def identifier_for(key: str) -> str:
    """``urn:uuid:`` + uuid5 of ``key`` (a Message-ID, angle brackets ignored)."""
    key = key.strip()
    if key.startswith("<") and key.endswith(">"):
        key = key[1:-1]
    return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, key)}"


def format_date(value: datetime) -> str:
    """``24 Nov 2026``: the same in every locale."""
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def _chapter_key(chapter: Chapter) -> str:
    if chapter.message_id:
        return chapter.message_id
    digest = hashlib.sha256()
    date = chapter.date.isoformat() if chapter.date else ""
    for part in (chapter.title, chapter.author or "", date, chapter.body_html):
        digest.update(part.encode("utf-8", "replace") + b"\0")
    return digest.hexdigest()


def _majority_language(chapters: Iterable[Chapter]) -> str:
    counts: dict[str, int] = {}
    for chapter in chapters:
        if chapter.language:
            counts[chapter.language] = counts.get(chapter.language, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else "en"


# --- text helpers -------------------------------------------------------------

# Characters XML 1.0 forbids (lxml refuses them), plus non-characters.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
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


def _text(value: str | None) -> str:
    """One line of XML-safe text."""
    return " ".join(_xml_safe(value or "").split())


def language_tag(value: str | None, default: str = "en") -> str:
    """A well-formed BCP 47 tag (``en_US`` -> ``en-US``); ``default`` when unusable."""
    tag = (value or "").strip().replace("_", "-")
    if not tag or not LANGUAGE_TAG.match(tag):
        return default
    parts = tag.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 and out[-1] != "x":
            out.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha() and len(out) == 1:
            out.append(part.title())  # script
        else:
            out.append(part.lower())
    return "-".join(out)


# --- chapter body sanitising ------------------------------------------------------

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
GLOBAL_ATTRS = frozenset({"id", "class", "title", "lang", "dir"})
ELEMENT_ATTRS = {
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start", "reversed", "type"},
    "li": {"value"},
    "bdo": {"dir"},
}
_INTEGER = re.compile(r"^\s*([0-9]{1,6})\s*$")
_SIGNED = re.compile(r"^\s*(-?[0-9]{1,9})\s*$")
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_URL_SAFE = "/?#[]@!$&'()*+,;=%~-._:"
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


def _is_blank(text: str | None) -> bool:
    return not text or not text.strip()


def _percent(text: str) -> str:
    return _LONE_PERCENT.sub("%25", text)


def _clean_url(href: str) -> str | None:
    """An absolute http(s)/mailto URL EPUBCheck accepts, or None."""
    href = href.strip()
    if _PLAIN_URL.match(href):
        return href
    scheme = href.split(":", 1)[0].lower() if ":" in href else ""
    if scheme == "mailto":
        rest = href.split(":", 1)[1]
        address = quote(unquote(rest), safe="@!$&'()*+,;=%~-._?:/")
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


class _BodySanitizer:
    """Turns an HTML/XHTML fragment into valid XHTML5 flow content.

    HTML parsing fixes what the parser knows (``<p>`` in ``<p>``, ``<a>`` in
    ``<a>``); this walk fixes the rest of the content model EPUBCheck enforces
    (blocks in phrasing content, list and table structure), keeps only
    attributes valid in XHTML5, makes ids unique and turns references to
    missing files or anchors into plain text.
    """

    def __init__(self, image_names: dict[str, str], reserved_ids: Iterable[str] = ()):
        self.image_names = image_names  # src as written in the body -> file name in the book
        self.used_images: list[str] = []
        self.ids: dict[str, str] = {}  # original id -> id in the output
        self.taken: set[str] = set(reserved_ids)
        self.fragment_links: list[tuple[etree._Element, str]] = []

    def parse(self, html: str) -> etree._Element:
        # libxml2's HTML parser treats <div/> as empty (unlike HTML5 browsers), which
        # is what XHTML input from the cleaner means.
        html = _xml_safe(html)
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
                _drop_tag(wrapper)
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
                    _drop_tag(child)  # too deep for some reading systems' XML parsers: keep the text
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
                _drop_tag(link)
        sources = {image.get("src") for image in root.iter("img")}
        self.used_images = [name for name in self.used_images if name in sources]

    # -- one child in its parent's context -------------------------------------------

    def _child(self, parent, child, phrasing: bool, in_link: bool, in_th: bool) -> str:
        if not isinstance(child.tag, str):  # comment or processing instruction
            _drop_tree(child)
            return "again"
        tag = child.tag.lower()
        if tag in DROP:
            _drop_tree(child)
            return "again"
        tag = RENAME.get(tag, tag)
        if tag not in KNOWN or tag == "picture":
            _drop_tag(child)
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
            _drop_tag(child)
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
                if not _is_blank("".join(child.itertext())):
                    child.append(etree.Element("br"))
                _drop_tag(child)
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
        if not _is_blank(element.text):
            new = etree.Element(wrapper)
            target = _sub(new, inner) if inner else new
            target.text = element.text
            element.insert(0, new)
        element.text = None
        for child in list(element):
            if not isinstance(child.tag, str):
                continue
            ctag = RENAME.get(child.tag.lower(), child.tag.lower())
            tail = child.tail
            child.tail = None
            if ctag not in allowed and ctag not in DROP:
                new = etree.Element(wrapper)
                child.addprevious(new)
                (_sub(new, inner) if inner and ctag not in {"td", "th"} else new).append(child)
                child = new
            if not _is_blank(tail):
                new = etree.Element(wrapper)
                (_sub(new, inner) if inner else new).text = tail
                child.addnext(new)

    @staticmethod
    def _valid_dl(element) -> bool:
        # HTML5: groups of one or more dt followed by one or more dd.
        if not _is_blank(element.text) or any(not _is_blank(c.tail) for c in element):
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
        if not _is_blank(table.text):
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
            if not _is_blank(tail):
                span = etree.Element("p")
                span.text = tail
                before.append(span)
        for node in before:
            table.addprevious(node)
        if not (head or body or foot):
            if caption is not None:
                caption.tag = "p"
                table.addprevious(caption)
            _drop_tree(table)
            return
        if caption is not None:
            table.append(caption)
        for tag, rows in (("thead", head), ("tbody", body), ("tfoot", foot)):
            if rows:
                section = _sub(table, tag)
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
        url = _clean_url(value)
        if url is not None:
            element.attrib["href"] = url

    def _image(self, element) -> None:
        src = element.attrib.pop("src", "") or ""
        name = self.image_names.get(_normalize_src(src))
        if name is None:
            # Remote or missing images are not allowed in an EPUB: keep only the alt text.
            alt = " ".join((element.attrib.get("alt") or "").split())
            if alt and element.getparent() is not None:
                _replace_with_text(element, f"[{alt}]")
            else:
                _drop_tree(element)
            return
        # src and alt (required in XHTML5) first, then width/height.
        attrs = dict(element.attrib)
        element.attrib.clear()
        element.attrib["src"] = name
        element.attrib["alt"] = attrs.pop("alt", "")
        element.attrib.update(attrs)
        if name not in self.used_images:
            self.used_images.append(name)



def _normalize_src(src: str) -> str:
    src = unquote(src.strip())
    if src.startswith("./"):
        src = src[2:]
    return posixpath.normpath(src) if src else ""


def _sub(parent, tag: str):
    child = etree.Element(tag)
    parent.append(child)
    return child


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


def _drop_tree(element) -> None:
    """Remove an element and its content, keeping the text after it."""
    parent = element.getparent()
    if parent is None:
        return
    _add_text_before(element, element.tail)
    parent.remove(element)


def _drop_tag(element) -> None:
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
    _drop_tree(element)


# --- XHTML documents --------------------------------------------------------------

def _serialize(element) -> str:
    # <td/>, <a id="x"/>: valid XML, but some reading systems parse chapters as HTML.
    for node in element.iter():
        if node.text is None and not len(node) and node.tag not in VOID:
            node.text = ""
    return etree.tostring(element, encoding="unicode", method="xml")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _document(
    title: str, lang: str, body: str, *, css: str | None = "epub.css", body_class: str | None = None
) -> bytes:
    head_css = f'<link rel="stylesheet" type="text/css" href="{css}"/>\n' if css else ""
    body_attr = f' class="{body_class}"' if body_class else ""
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<!DOCTYPE html>\n"
        f'<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        f'lang="{lang}" xml:lang="{lang}">\n'
        f"<head>\n<title>{_escape(title)}</title>\n{head_css}</head>\n"
        f"<body{body_attr}>\n{body}\n</body>\n</html>\n"
    )
    return text.encode("utf-8")


def _same_text(a: str, b: str) -> bool:
    return _text(a).casefold() == _text(b).casefold()


def chapter_xhtml(chapter: Chapter, lang: str, image_names: dict[str, str]) -> tuple[bytes, list[str]]:
    """The chapter's XHTML document and the image files it uses (in order)."""
    title = _text(chapter.title) or "Untitled"
    sanitizer = _BodySanitizer(image_names)
    root = sanitizer.sanitize(sanitizer.parse(chapter.body_html or ""))

    # The header already shows the title; a leading heading that repeats it goes.
    first = next((c for c in root if isinstance(c.tag, str)), None)
    if (
        first is not None
        and first.tag in {"h1", "h2", "h3"}
        and _is_blank(root.text)
        and _same_text("".join(first.itertext()), title)
    ):
        _drop_tree(first)
    sanitizer.finish(root)

    body = etree.Element("div")
    header = _sub(body, "div")
    header.set("class", "chapter-header")
    heading = _sub(header, "h1")
    heading.text = title
    byline = " · ".join(
        part for part in (_text(chapter.author), format_date(chapter.date) if chapter.date else "") if part
    )
    if byline:
        line = _sub(header, "p")
        line.set("class", "byline")
        line.text = byline
    root.set("class", "chapter-body")
    body.append(root)
    url = _clean_url(chapter.source_url) if chapter.source_url else None
    if url is not None and url.startswith("http"):
        source = _sub(body, "p")
        source.set("class", "source")
        source.text = "Original: "
        link = _sub(source, "a")
        link.set("href", url)
        link.text = urlsplit(url).hostname or url
    inner = _serialize(body)
    inner = inner[len("<div>") : -len("</div>")]
    chapter_lang = language_tag(chapter.language, lang) if chapter.language else lang
    return _document(title, chapter_lang, inner), sanitizer.used_images


def _sniff_image(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


# --- the book ----------------------------------------------------------------------


class _RawDocument(ebooklib_epub.EpubHtml):
    """An XHTML item written exactly as we built it (ebooklib would re-parse it)."""

    def __init__(self, *, uid: str, file_name: str, title: str, data: bytes, linear: bool = True):
        super().__init__(uid=uid, file_name=file_name, title=title, media_type="application/xhtml+xml")
        self._data = data
        self.is_linear = linear

    def get_content(self, default=None) -> bytes:
        return self._data


class _Entries:
    """Stands in for ebooklib's ZipFile: collects (name, bytes) so we write the zip ourselves."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes]] = []

    def writestr(self, name: str, data, compress_type=None) -> None:
        self.files.append((name, data.encode("utf-8") if isinstance(data, str) else bytes(data)))


class _Writer(ebooklib_epub.EpubWriter):
    def write(self) -> None:  # same steps as EpubWriter.write, into memory
        self.out = _Entries()
        self._write_container()
        self._write_opf()
        self._write_items()


_XML_SUFFIXES = (".xhtml", ".opf", ".ncx", ".xml")
_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>\s*")


def _with_declaration(data: bytes) -> bytes:
    """Every XML file starts with the exact declaration Kindle tooling expects."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return XML_DECLARATION + b"\n" + _DECLARATION.sub(b"", data, count=1)


def _zip(files: list[tuple[str, bytes]], when: datetime) -> bytes:
    # Fixed timestamps (the book's date) make the same book the same bytes; ZIP dates span 1980-2107.
    stamp = (min(max(1980, when.year), 2107), when.month, when.day, when.hour, when.minute, when.second)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        info = zipfile.ZipInfo("mimetype", date_time=stamp)
        info.compress_type = zipfile.ZIP_STORED
        info.create_system = 3
        info.external_attr = 0o644 << 16
        archive.writestr(info, b"application/epub+zip")
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            if name.endswith(_XML_SUFFIXES):
                data = _with_declaration(data)
            # Images are already compressed; deflating them again only costs time.
            info.compress_type = zipfile.ZIP_STORED if _sniff_image(data) else zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=6)
    return out.getvalue()


_STYLESHEET = importlib.resources.files("inbox_pipeline.core").joinpath("epub.css").read_bytes()


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _ordered(chapters: Sequence[Chapter]) -> list[tuple[str | None, list[Chapter]]]:
    """Chapters grouped by ``group`` (first appearance first), keeping their order within."""
    groups: dict[str | None, list[Chapter]] = {}
    for chapter in chapters:
        key = _text(chapter.group) or None
        groups.setdefault(key, []).append(chapter)
    return list(groups.items())


def _image_names(chapter: Chapter, number: int) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Map the chapter's image paths to unique, short book paths (``images/c003-01.jpg``)."""
    names: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for image in chapter.images:
        key = _normalize_src(image.file_name)
        if not key or key in names:
            continue
        media_type = _sniff_image(image.data)  # trust the bytes, not the label
        if media_type is None:
            continue  # WebP, SVG, TIFF...: Kindle refuses them; images.py should have converted
        name = f"images/c{number:03d}-{len(files) + 1:03d}{IMAGE_EXTENSIONS[media_type]}"
        names[key] = name
        files[name] = (media_type, image.data)
    return names, files


def build_epub(book: Book) -> bytes:
    """The book as EPUB 3 bytes: cover, nav + NCX, one XHTML file per chapter."""
    lang = language_tag(book.language)
    title = _text(book.title) or "Newsletter"
    when = _utc(book.date)

    out = ebooklib_epub.EpubBook()
    out.set_identifier(_text(book.identifier) or identifier_for(title + when.isoformat()))
    out.set_title(title)
    out.set_language(lang)
    out.add_author(_text(book.creator) or "Unknown")
    out.add_metadata("DC", "date", when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out.add_metadata("DC", "publisher", _text(book.publisher) or "inbox-pipeline")
    if book.description and _text(book.description):
        out.add_metadata("DC", "description", _text(book.description))
    # ebooklib announces itself; keep only what we say.
    out.metadata.get(ebooklib_epub.NAMESPACES["OPF"], {}).pop("generator", None)

    css = ebooklib_epub.EpubItem(uid="css", file_name="epub.css", media_type="text/css", content=_STYLESHEET)
    out.add_item(css)

    cover_jpeg = render_cover(
        _text(book.cover_title) or title,
        _text(book.cover_subtitle) or None,
        format_date(book.date),
        size=COVER_SIZE,
    )
    cover_image = ebooklib_epub.EpubCover(uid="cover-img", file_name="cover.jpg")
    cover_image.media_type = "image/jpeg"
    cover_image.content = cover_jpeg
    out.add_item(cover_image)
    out.add_metadata(None, "meta", "", {"name": "cover", "content": "cover-img"})  # Kindle reads this one
    cover_page = _RawDocument(
        uid="cover",
        file_name="cover.xhtml",
        title="Cover",
        data=_document(
            "Cover",
            lang,
            f'<div class="cover"><img src="cover.jpg" alt="{_escape(_text(book.cover_title) or title)}"/></div>',
            body_class="cover",
        ),
        linear=False,
    )
    out.add_item(cover_page)

    toc: list = []
    documents: list[_RawDocument] = []
    number = 0
    grouped = _ordered(book.chapters)
    use_sections = len(book.chapters) > 1 and any(key is not None for key, _ in grouped)
    for group, chapters in grouped:
        links = []
        for chapter in chapters:
            number += 1
            names, files = _image_names(chapter, number)
            data, used = chapter_xhtml(chapter, lang, names)
            for name in sorted(used):
                media_type, content = files[name]
                uid = "img-" + posixpath.splitext(posixpath.basename(name))[0]
                out.add_item(ebooklib_epub.EpubImage(uid=uid, file_name=name, media_type=media_type, content=content))
            document = _RawDocument(
                uid=f"c{number:03d}",
                file_name=f"c{number:03d}.xhtml",
                title=_text(chapter.title) or "Untitled",
                data=data,
            )
            out.add_item(document)
            documents.append(document)
            links.append(document)
        if use_sections and group is not None:
            toc.append((ebooklib_epub.Section(group, href=links[0].file_name), links))
        else:
            toc.extend(links)
    if not documents:
        document = _RawDocument(
            uid="c001", file_name="c001.xhtml", title=title,
            data=_document(title, lang, f'<div class="chapter-header"><h1>{_escape(title)}</h1></div>'),
        )
        out.add_item(document)
        documents.append(document)
        toc.append(document)

    nav = ebooklib_epub.EpubNav(title="Contents")
    nav.add_item(css)
    out.add_item(nav)
    out.add_item(ebooklib_epub.EpubNcx())
    out.toc = toc
    # A contents page in the reading order helps digests; a single newsletter opens on its text.
    out.spine = [cover_page] + (["nav"] if len(documents) > 1 else []) + documents
    # Landmarks (EPUB 3) and guide (EPUB 2, older Kindles): where the book opens.
    out.guide = [{"type": "cover", "href": "cover.xhtml", "title": "Cover"}]
    if len(documents) > 1:
        out.guide.append({"type": "toc", "href": "nav.xhtml", "title": "Contents"})
    out.guide.append({"type": "text", "href": documents[0].file_name, "title": documents[0].title})

    writer = _Writer("", out, {"mtime": when.replace(tzinfo=None), "epub3_pages": False})
    writer.process()
    writer.write()
    return _zip(writer.out.files, when)
