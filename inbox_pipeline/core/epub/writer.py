"""EPUB 3 bytes for a ``Book``: cover, nav + NCX, one XHTML file per chapter, deterministic zip.

``build_epub`` is deterministic (same book, same bytes) and defensive: every
chapter body goes through the one sanitiser (``core.xhtml``) so that every
book passes EPUBCheck with zero errors.
"""

from __future__ import annotations

import importlib.resources
import io
import posixpath
import re
import zipfile
from collections.abc import Sequence
from datetime import datetime, timezone

from ebooklib import epub as ebooklib_epub

from inbox_pipeline.core.cover import render_cover
from inbox_pipeline.core.epub.book import Book, Chapter, format_date, identifier_for
from inbox_pipeline.core.epub.chapter import chapter_xhtml, escape, xhtml_document
from inbox_pipeline.core.language import language_tag
from inbox_pipeline.core.xhtml import normalize_src, one_line

COVER_SIZE = (758, 1008)  # 3:4 like Kindle screens; ~3 ms to draw, sharp enough full screen
XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'
IMAGE_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif"}


def _sniff_image(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


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
_MINIMAL_STYLESHEET = b"body { margin: 0; }\n"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _ordered(chapters: Sequence[Chapter]) -> list[tuple[str | None, list[Chapter]]]:
    """Chapters grouped by ``group`` (first appearance first), keeping their order within."""
    groups: dict[str | None, list[Chapter]] = {}
    for chapter in chapters:
        key = one_line(chapter.group) or None
        groups.setdefault(key, []).append(chapter)
    return list(groups.items())


def _image_names(chapter: Chapter, number: int) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Map the chapter's image paths to unique, short book paths (``images/c003-01.jpg``)."""
    names: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for image in chapter.images:
        key = normalize_src(image.file_name)
        if not key or key in names:
            continue
        media_type = _sniff_image(image.data)  # trust the bytes, not the label
        if media_type is None:
            continue  # WebP, SVG, TIFF...: Kindle refuses them; images.py should have converted
        name = f"images/c{number:03d}-{len(files) + 1:03d}{IMAGE_EXTENSIONS[media_type]}"
        names[key] = name
        files[name] = (media_type, image.data)
    return names, files


def _add_cover(out, book: Book, title: str, lang: str):
    """The generated cover image and its page."""
    cover_title = one_line(book.cover_title) or title
    cover_jpeg = render_cover(
        cover_title,
        one_line(book.cover_subtitle) or None,
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
        data=xhtml_document(
            "Cover",
            lang,
            f'<div class="cover"><img src="cover.jpg" alt="{escape(cover_title)}"/></div>',
            body_class="cover",
        ),
        linear=False,
    )
    out.add_item(cover_page)
    return cover_page


def build_epub(book: Book) -> bytes:
    """The book as EPUB 3 bytes: cover, nav + NCX, one XHTML file per chapter."""
    lang = language_tag(book.language)
    title = one_line(book.title) or "Newsletter"
    when = _utc(book.date)

    out = ebooklib_epub.EpubBook()
    out.set_identifier(one_line(book.identifier) or identifier_for(title + when.isoformat()))
    out.set_title(title)
    out.set_language(lang)
    out.add_author(one_line(book.creator) or "Unknown")
    out.add_metadata("DC", "date", when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out.add_metadata("DC", "publisher", one_line(book.publisher) or "inbox-pipeline")
    if book.description and one_line(book.description):
        out.add_metadata("DC", "description", one_line(book.description))
    # ebooklib announces itself; keep only what we say.
    out.metadata.get(ebooklib_epub.NAMESPACES["OPF"], {}).pop("generator", None)

    stylesheet = _MINIMAL_STYLESHEET if book.safe_mode else _STYLESHEET
    css = ebooklib_epub.EpubItem(uid="css", file_name="epub.css", media_type="text/css", content=stylesheet)
    out.add_item(css)

    cover_page = None if book.safe_mode else _add_cover(out, book, title, lang)

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
                title=one_line(chapter.title) or "Untitled",
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
            data=xhtml_document(title, lang, f'<div class="chapter-header"><h1>{escape(title)}</h1></div>'),
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
    out.spine = ([cover_page] if cover_page else []) + (["nav"] if len(documents) > 1 else []) + documents
    # Landmarks (EPUB 3) and guide (EPUB 2, older Kindles): where the book opens.
    out.guide = [{"type": "cover", "href": "cover.xhtml", "title": "Cover"}] if cover_page else []
    if len(documents) > 1:
        out.guide.append({"type": "toc", "href": "nav.xhtml", "title": "Contents"})
    out.guide.append({"type": "text", "href": documents[0].file_name, "title": documents[0].title})

    writer = _Writer("", out, {"mtime": when.replace(tzinfo=None), "epub3_pages": False})
    writer.process()
    writer.write()
    return _zip(writer.out.files, when)
