"""A chapter as an XHTML document: a header (title, byline), the sanitised body, its source link."""

from __future__ import annotations

from urllib.parse import urlsplit

from lxml import etree

from inbox_pipeline.core.epub.book import Chapter, format_date
from inbox_pipeline.core.language import language_tag
from inbox_pipeline.core.xhtml import Sanitizer, clean_url, drop_tree, is_blank, one_line, serialize


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def xhtml_document(
    title: str, lang: str, body: str, *, css: str | None = "epub.css", body_class: str | None = None
) -> bytes:
    head_css = f'<link rel="stylesheet" type="text/css" href="{css}"/>\n' if css else ""
    body_attr = f' class="{body_class}"' if body_class else ""
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<!DOCTYPE html>\n"
        f'<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        f'lang="{lang}" xml:lang="{lang}">\n'
        f"<head>\n<title>{escape(title)}</title>\n{head_css}</head>\n"
        f"<body{body_attr}>\n{body}\n</body>\n</html>\n"
    )
    return text.encode("utf-8")


def _same_text(a: str, b: str) -> bool:
    return one_line(a).casefold() == one_line(b).casefold()


def chapter_xhtml(chapter: Chapter, lang: str, image_names: dict[str, str]) -> tuple[bytes, list[str]]:
    """The chapter's XHTML document and the image files it uses (in order)."""
    title = one_line(chapter.title) or "Untitled"
    sanitizer = Sanitizer(image_names)
    root = sanitizer.sanitize(sanitizer.parse(chapter.body_html or ""))

    # The header already shows the title; a leading heading that repeats it goes.
    first = next((c for c in root if isinstance(c.tag, str)), None)
    if (
        first is not None
        and first.tag in {"h1", "h2", "h3"}
        and is_blank(root.text)
        and _same_text("".join(first.itertext()), title)
    ):
        drop_tree(first)
    sanitizer.finish(root)

    body = etree.Element("div")
    header = etree.SubElement(body, "div")
    header.set("class", "chapter-header")
    heading = etree.SubElement(header, "h1")
    heading.text = title
    byline = " · ".join(
        part for part in (one_line(chapter.author), format_date(chapter.date) if chapter.date else "") if part
    )
    if byline:
        line = etree.SubElement(header, "p")
        line.set("class", "byline")
        line.text = byline
    root.set("class", "chapter-body")
    body.append(root)
    url = clean_url(chapter.source_url) if chapter.source_url else None
    if url is not None and url.startswith("http"):
        source = etree.SubElement(body, "p")
        source.set("class", "source")
        source.text = "Original: "
        link = etree.SubElement(source, "a")
        link.set("href", url)
        link.text = urlsplit(url).hostname or url
    inner = serialize(body)
    inner = inner[len("<div>") : -len("</div>")]
    chapter_lang = language_tag(chapter.language, lang) if chapter.language else lang
    return xhtml_document(title, chapter_lang, inner), sanitizer.used_images
