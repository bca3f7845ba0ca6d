"""Digest books: many newsletters in one EPUB, split into volumes under a byte budget.

Pure: chapters in, EPUB bytes out; no database, no storage, no Dagster.

- ``chapter_from_epub(epub, ...) -> Chapter``: the newsletter chapter inside a
  single-newsletter EPUB that ``build_epub`` made (body and images), so a digest
  reuses what was already cleaned, fetched and validated.
- ``pack_volumes(sizes, budget) -> list[list[int]]``: consecutive runs of items
  whose sizes fit the budget.
- ``build_digest_volumes(chapters, *, user_label, period_label, date, budget_bytes)
  -> list[DigestVolume]``: one book per volume, each under ``budget_bytes`` unless
  a single chapter alone is larger; titles say "Vol. 1 of 2" when split; the
  cover carries the digest's date.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from lxml import etree

from inbox_pipeline.core.epub import Book, Chapter, build_epub
from inbox_pipeline.core.images import EpubImage
from inbox_pipeline.core.names import safe_file_name

OPF = "http://www.idpf.org/2007/opf"
# Per chapter beyond its body and images: its XHTML wrapper, nav + NCX entries, manifest lines.
CHAPTER_OVERHEAD = 2048
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif"}


class DigestInputError(ValueError):
    """A stored EPUB that holds no readable chapter (the message says why)."""


@dataclass(frozen=True)
class DigestVolume:
    number: int  # 1-based
    total: int
    book: Book
    epub: bytes
    positions: tuple[int, ...]  # indexes into the chapters given, oldest first
    file_name: str

    @property
    def title(self) -> str:
        return self.book.title

    @property
    def size(self) -> int:
        return len(self.epub)


# --- chapters from stored EPUBs ----------------------------------------------------


def chapter_from_epub(
    epub: bytes,
    *,
    title: str | None = None,
    author: str | None = None,
    date: datetime | None = None,
    group: str | None = None,
    language: str | None = None,
    message_id: str | None = None,
) -> Chapter:
    """The newsletter inside a book made by ``build_epub``: its body and the images it shows.

    The generated header (title, byline) is left out: the digest writes its own.
    Books with several content documents give one chapter with their bodies in order.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(epub))
        container = etree.fromstring(zf.read("META-INF/container.xml"))
        rootfile = container.find(".//{*}rootfile")
        opf_path = rootfile.get("full-path") if rootfile is not None else None
        if not opf_path:
            raise DigestInputError("the EPUB names no package document")
        base = posixpath.dirname(opf_path)
        opf = etree.fromstring(zf.read(opf_path))
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError) as exc:
        raise DigestInputError(f"not a readable EPUB: {exc}") from None


    manifest = {item.get("id"): item for item in opf.iter(f"{{{OPF}}}item")}
    bodies: list[str] = []
    images: dict[str, EpubImage] = {}
    found_title: str | None = None
    for ref in opf.iter(f"{{{OPF}}}itemref"):
        item = manifest.get(ref.get("idref"))
        if item is None or item.get("media-type") != "application/xhtml+xml":
            continue
        href = item.get("href") or ""
        if "nav" in (item.get("properties") or "").split() or ref.get("linear") == "no":
            continue  # the contents page and the cover
        doc_path = posixpath.normpath(posixpath.join(base, href))
        try:
            doc = etree.fromstring(zf.read(doc_path))
        except (KeyError, etree.XMLSyntaxError) as exc:
            raise DigestInputError(f"chapter {href} cannot be read: {exc}") from None
        _strip_namespaces(doc)
        body = doc.find(".//body")
        if body is None:
            continue
        heading = body.find(".//div[@class='chapter-header']/h1")
        if heading is not None and found_title is None:
            found_title = " ".join("".join(heading.itertext()).split()) or None
        content = body.find(".//div[@class='chapter-body']")
        if content is None:  # not one of ours: the whole body, minus a generated header
            content = body
            for header in content.findall(".//div[@class='chapter-header']"):
                header.getparent().remove(header)
        doc_dir = posixpath.dirname(doc_path)
        for img in content.iter("img"):
            src = img.get("src") or ""
            if not src or "://" in src or src.startswith("data:"):
                continue
            path = posixpath.normpath(posixpath.join(doc_dir, src))
            media_type = IMAGE_TYPES.get(posixpath.splitext(path)[1].lower())
            if media_type is None or src in images:
                continue
            try:
                data = zf.read(path)
            except KeyError:
                continue  # a missing file: the digest keeps the alt text only
            images[src] = EpubImage(src, media_type, data)
        bodies.append(_inner_xhtml(content))
    if not bodies:
        raise DigestInputError("the EPUB has no chapter")
    return Chapter(
        title=title or found_title or "Newsletter",
        body_html="\n".join(bodies),
        images=tuple(images.values()),
        author=author,
        date=date,
        group=group or author,
        language=language,
        message_id=message_id,
    )


def _strip_namespaces(root: etree._Element) -> None:
    """Plain element names, so the fragment reads like the cleaner's output (no xmlns on every tag)."""
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        node.tag = etree.QName(node).localname
        for name in [n for n in node.attrib if n.startswith("{")]:
            del node.attrib[name]  # epub:type and the like; the digest sets its own
    etree.cleanup_namespaces(root)


def _inner_xhtml(element: etree._Element) -> str:
    parts = [_escape_text(element.text or "")]
    for child in element:
        parts.append(etree.tostring(child, encoding="unicode", method="xml", with_tail=True))
    return "".join(parts)


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- volumes --------------------------------------------------------------------------


def estimate_chapter_bytes(chapter: Chapter) -> int:
    """An upper estimate of what the chapter adds to a book (text is deflated; images are not)."""
    return len(chapter.body_html.encode("utf-8")) + sum(len(i.data) for i in chapter.images) + CHAPTER_OVERHEAD


def pack_volumes(sizes: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive indexes grouped so each group's sizes add up to at most ``budget``.

    Order is kept (oldest first stays oldest first); an item larger than the
    budget on its own gets a volume to itself.
    """
    volumes: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, size in enumerate(sizes):
        if current and used + size > budget:
            volumes.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        volumes.append(current)
    return volumes


def volume_title(title: str, number: int, total: int) -> str:
    return title if total == 1 else f"{title} (Vol. {number} of {total})"


def digest_file_name(period_label: str, date: datetime, number: int = 1, total: int = 1) -> str:
    label = " ".join((period_label or "").split()) or "digest"
    if not label.lower().endswith("digest"):
        label += " digest"
    suffix = f"-vol-{number}-of-{total}.epub" if total > 1 else ".epub"  # never cut: volumes differ by it
    return safe_file_name(label, date, suffix=suffix, limit=50)  # what the mailer keeps of an attachment's name


def build_digest_volumes(
    chapters: Sequence[Chapter],
    *,
    user_label: str,
    period_label: str,
    date: datetime,
    budget_bytes: int,
    language: str | None = None,
) -> list[DigestVolume]:
    """One digest book, or several volumes when the whole would exceed ``budget_bytes``.

    Chapters are given oldest first and stay in that order across volumes. Each
    volume is measured after building; one still over budget is split again,
    so only a volume holding a single oversized chapter can exceed the budget
    (the caller sends that one as a download link).
    """
    if not chapters:
        raise ValueError("a digest needs at least one chapter")
    # What every volume carries whatever its chapters: cover, stylesheet, nav, package.
    fixed = len(build_epub(Book.for_digest(user_label, period_label, date, [], language=language)))
    groups = pack_volumes([estimate_chapter_bytes(c) for c in chapters], max(1, budget_bytes - fixed))
    while True:
        total = len(groups)
        volumes = [
            _volume(chapters, positions, n, total, user_label, period_label, date, language)
            for n, positions in enumerate(groups, start=1)
        ]
        too_big = {n for n, v in enumerate(volumes) if v.size > budget_bytes and len(groups[n]) > 1}
        if not too_big:
            return volumes
        regrouped: list[list[int]] = []
        for n, positions in enumerate(groups):
            if n in too_big:
                regrouped += _halves(positions, [estimate_chapter_bytes(chapters[i]) for i in positions])
            else:
                regrouped.append(positions)
        groups = regrouped


def _halves(positions: list[int], sizes: list[int]) -> list[list[int]]:
    """Split in two where the estimated sizes balance (each half non-empty)."""
    half, running, cut = sum(sizes) / 2, 0, 1
    for k, size in enumerate(sizes[:-1], start=1):
        running += size
        cut = k
        if running >= half:
            break
    return [positions[:cut], positions[cut:]]


def _volume(
    chapters: Sequence[Chapter],
    positions: list[int],
    number: int,
    total: int,
    user_label: str,
    period_label: str,
    date: datetime,
    language: str | None,
) -> DigestVolume:
    book = Book.for_digest(user_label, period_label, date, [chapters[i] for i in positions], language=language)
    if total > 1:
        part = f"Vol. {number} of {total}"
        book = replace(
            book,
            title=volume_title(book.title, number, total),
            cover_title=f"{book.cover_title or book.title}, {part}",
            cover_subtitle=f"{part} · {book.cover_subtitle}" if book.cover_subtitle else part,
            description=f"{part}. {book.description}" if book.description else part,
        )
    return DigestVolume(
        number=number,
        total=total,
        book=book,
        epub=build_epub(book),
        positions=tuple(positions),
        file_name=digest_file_name(period_label, date, number, total),
    )
