"""The book model: a newsletter or a digest as chapters, title, creator, language and date."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from inbox_pipeline.core.xhtml import one_line

if TYPE_CHECKING:
    from inbox_pipeline.core.images import EpubImage

# Stable namespace for identifiers derived from Message-IDs (uuid5 needs one).
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "inbox-pipeline.invalid")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


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
    # Amazon's second chance after a conversion error: no cover (no image at all) and minimal CSS.
    safe_mode: bool = False

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
            title=one_line(title) or "Newsletter",
            creator=one_line(sender) or "Unknown sender",
            language=language,
            date=date,
            chapters=(chapter,),
            cover_subtitle=one_line(sender) or None,
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
        period = one_line(period_label) or "Digest"
        period = period[:1].upper() + period[1:]
        kind = period if period.lower().endswith("digest") else f"{period} digest"
        keys = sorted(_chapter_key(c) for c in chapters)
        identifier = identifier_for("digest\n" + one_line(user_label) + "\n" + period + "\n" + "\n".join(keys))
        senders = list(dict.fromkeys(one_line(c.group or c.author) for c in chapters if (c.group or c.author)))
        count = f"{len(chapters)} newsletter" + ("" if len(chapters) == 1 else "s")
        subtitle = count + (": " + ", ".join(senders[:4]) + (", …" if len(senders) > 4 else "") if senders else "")
        titles = "; ".join(one_line(c.title) for c in chapters)
        return cls(
            identifier=identifier,
            title=f"{kind} — {format_date(date)}",
            creator="inbox-pipeline",
            language=language or _majority_language(chapters),
            date=date,
            chapters=chapters,
            description=(f"For {one_line(user_label)}: " if one_line(user_label) else "") + titles,
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
