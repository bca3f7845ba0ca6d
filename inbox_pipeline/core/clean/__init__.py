"""Clean a newsletter's HTML into a plain XHTML article (PRODUCT.md, step 5).

``clean_html(html, headers=..., subject=..., sender=...) -> CleanedArticle``
"""

from __future__ import annotations

import re
from email.utils import parseaddr


from ..language import guess_language
from ..mime import text_to_html
from .article import CleanedArticle
from .dom import Element, ascii_lower, collapse, parse, text_of
from .engine import Cleaner, link_target
from .phrases import FORWARDED_MARKER
from .hidden import stylesheet_hidden_classes
from .lead import drop_repeated_title
from .platforms import Markup, detect_platform
from .tables import linearise_tables
from .xhtml import serialise

__all__ = ["CleanedArticle", "clean_html"]

_SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:fwd?|fw|wg|tr|rv|i|re|aw|sv)\s*:\s*)+", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\*\|.*?\|\*|\{\{.*?\}\}|^\s*(?:email|newsletter|untitled|\(no subject\))\s*$", re.I)
# Any tag an HTML author writes; plain text sent as text/html has none ("<http://...>" is no tag).
_MARKUP = re.compile(r"</?(?:html|head|body|p|div|br|table|tr|td|th|span|font|a|img|b|i|u|em|strong|center|h[1-6]|ul|ol|li|pre|blockquote|hr|meta|style|title)\b|<!", re.I)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def clean_html(
    html: str,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    subject: str | None = None,
    sender: str | None = None,
) -> CleanedArticle:
    """Strip email clutter from ``html`` and return the article as an XHTML body fragment.

    ``headers`` (lower-case name, value) and ``sender`` help recognise the platform;
    ``subject`` becomes the title when given.
    """
    headers = tuple((k.lower(), v) for k, v in headers)
    if sender:
        headers = headers + (("x-clean-sender", sender),)
    if _MARKUP.search(html) is None and html.count("\n") >= 3:
        html = text_to_html(html)  # a text/html part holding plain text: its lines are its structure
    root = parse(html)
    if root is None:
        return _empty(subject, headers)
    css = "\n".join(style.text or "" for style in root.iter("style"))
    hidden_classes = stylesheet_hidden_classes(css) if css else frozenset()
    html_title = collapse(root.findtext(".//title") or "")
    declared = root.get("lang") or root.get("xml:lang") or _header(headers, "content-language")
    rules = detect_platform(headers, Markup(root=root, source=ascii_lower(html)))

    body = root.find("body")
    if body is None:
        body = root
    cleaner = Cleaner(body, rules, hidden_classes, _list_targets(headers))
    cleaner.drop_invisible()
    if "-----" in html and FORWARDED_MARKER.search(html):
        cleaner.drop_forwarded_header()
    if "-----BEGIN PGP" in html or "--<br" in html:
        cleaner.drop_signatures()
    cleaner.drop_button_links()
    cleaner.drop_sponsor_sections()
    cleaner.drop_ad_units()
    cleaner.score_blocks()
    linearise_tables(body)
    title = _title(subject, html_title, body)
    names, site = _sender(headers)
    removed = cleaner.removed + drop_repeated_title(body, title, names, site)
    xhtml = serialise(body)

    text = collapse(text_of(body))
    return CleanedArticle(
        html=xhtml,
        platform=rules.name,
        title=title,
        words=_count_words(text),
        language=guess_language(text, declared),
        removed=removed,
    )


def _empty(subject: str | None, headers: tuple[tuple[str, str], ...]) -> CleanedArticle:
    return CleanedArticle(
        html="",
        platform="generic",
        title=_title(subject, "", None),
        words=0,
        language=guess_language("", _header(headers, "content-language")),
        removed=0,
    )


# List-Archive is left out: the archive is where the articles live, and links to it are content.
_LIST_HEADERS = ("list-unsubscribe", "list-subscribe", "list-post", "list-help", "list-owner")
_ANGLED = re.compile(r"<([^<>\s]+)>")


def _list_targets(headers: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """The link targets the List-* headers name: links to them in the body are list furniture.

    A bare host is no target: the sender's home page is linked from articles too.
    """
    return frozenset(
        target
        for key, value in headers
        if key in _LIST_HEADERS
        for url in _ANGLED.findall(value)
        if ("/" in (target := link_target(url)) or "@" in target)
    )


def _sender(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], str]:
    """The sender's display name, as a masthead would spell it, and the domain of its address."""
    name, address = parseaddr(_header(headers, "from") or "")
    domain = address.rpartition("@")[2].lower().removeprefix("www.")
    return ((name,) if name else ()), domain


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    return next((value for key, value in headers if key == name), None)


def _title(subject: str | None, html_title: str, body: Element | None) -> str | None:
    if subject and subject.strip():
        return collapse(_SUBJECT_PREFIX.sub("", subject)) or collapse(subject)
    if html_title and not _PLACEHOLDER.search(html_title):
        return html_title
    if body is not None:
        for tag in ("h1", "h2"):
            heading = body.find(f".//{tag}")
            if heading is not None:
                text = collapse(text_of(heading))
                if text:
                    return text[:200]
    return None


def _count_words(text: str) -> int:
    """Words for reading time; CJK characters count one word each."""
    if text.isascii() or _CJK.search(text) is None:
        return len(_WORD.findall(text))
    cjk = len(_CJK.findall(text))
    return len(_WORD.findall(_CJK.sub(" ", text))) + cjk
