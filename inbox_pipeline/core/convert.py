"""The whole core in one call: raw email bytes in, a Kindle-ready EPUB out.

The Dagster ops call the same steps one at a time (so each is retried and shown
on its own); the ``convert`` command and the digest builder call them here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from inbox_pipeline.core.message import Classification, ParsedEmail

if TYPE_CHECKING:
    from inbox_pipeline.core.clean import CleanedArticle
    from inbox_pipeline.core.epub import Book, Chapter
    from inbox_pipeline.core.images import ImagePolicy, ImagesResult


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert; the defaults suit a preview on the command line."""

    fetch_images: bool = True
    image_policy: "ImagePolicy | None" = None  # None: ImagePolicy() with fetch_images applied


@dataclass(frozen=True)
class PreparedChapter:
    """One email made ready for a book: its cleaned article, images and chapter."""

    email: ParsedEmail
    classification: Classification
    article: "CleanedArticle"
    images: "ImagesResult"
    chapter: "Chapter"


@dataclass(frozen=True)
class Conversion:
    email: ParsedEmail
    classification: Classification
    article: "CleanedArticle"
    images: "ImagesResult"
    book: "Book"
    epub: bytes
    file_name: str
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def title(self) -> str:
        return self.book.title

    @property
    def words(self) -> int:
        return self.article.words

    @property
    def images_kept(self) -> int:
        return self.images.kept

    @property
    def images_dropped(self) -> int:
        return self.images.dropped


def resolve_policy(options: ConvertOptions) -> "ImagePolicy":
    from dataclasses import replace

    from inbox_pipeline.core.images import ImagePolicy

    policy = options.image_policy or ImagePolicy()
    if not options.fetch_images and policy.fetch_remote:
        policy = replace(policy, fetch_remote=False)
    return policy


def email_title(email: ParsedEmail, article: "CleanedArticle | None" = None) -> str:
    """The title a reader sees: the subject, else the article's own title."""
    subject = " ".join((email.subject or "").split())
    if subject:
        return subject
    if article is not None and article.title:
        return article.title
    return email.sender.name or email.sender.email or "Newsletter"


def prepare_chapter(
    email: ParsedEmail,
    *,
    policy: "ImagePolicy",
    classification: Classification | None = None,
    group: str | None = None,
) -> PreparedChapter:
    """Clean an email's HTML, embed its images and wrap it as a chapter."""
    from inbox_pipeline.core.classify import classify
    from inbox_pipeline.core.clean import clean_html
    from inbox_pipeline.core.epub import Chapter
    from inbox_pipeline.core.images import process_images

    classification = classification or classify(email)
    article = clean_html(
        email.html or "",
        headers=email.headers,
        subject=email.subject,
        sender=email.sender.email or None,
    )
    images = process_images(article.html, email.inline_parts, policy)
    chapter = Chapter(
        title=email_title(email, article),
        body_html=images.html,
        images=tuple(images.images),
        author=email.sender.name or email.sender.email or None,
        date=email.date,
        group=group or email.sender.name or email.sender.email or None,
        language=article.language,
        message_id=email.message_id,
    )
    return PreparedChapter(email, classification, article, images, chapter)


def book_for_email(prepared: PreparedChapter) -> "Book":
    from inbox_pipeline.core.epub import Book

    email = prepared.email
    return Book.for_newsletter(
        message_id=email.message_id,
        title=prepared.chapter.title,
        sender=email.sender.name or email.sender.email or "Unknown sender",
        date=email.date or datetime.now(timezone.utc),
        language=prepared.article.language,
        chapter=prepared.chapter,
    )


def convert_email(raw: bytes, *, options: ConvertOptions = ConvertOptions()) -> Conversion:
    """Parse, classify, clean, embed images and build the EPUB for one email.

    Raises ``EmailParseError`` (a clear, user-readable reason) for input that is
    not an email; everything else in a real-world email degrades, not fails.
    """
    import time

    from inbox_pipeline.core.epub import build_epub
    from inbox_pipeline.core.parse import parse_email

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    email = parse_email(raw)
    t1 = time.perf_counter()
    prepared = prepare_chapter(email, policy=resolve_policy(options))
    t2 = time.perf_counter()
    book = book_for_email(prepared)
    epub = build_epub(book)
    t3 = time.perf_counter()
    timings.update(parse=(t1 - t0) * 1e3, prepare=(t2 - t1) * 1e3, epub=(t3 - t2) * 1e3)
    return Conversion(
        email=email,
        classification=prepared.classification,
        article=prepared.article,
        images=prepared.images,
        book=book,
        epub=epub,
        file_name=safe_file_name(book.title, email.date),
        timings_ms=timings,
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def safe_file_name(title: str, date: datetime | None = None, *, suffix: str = ".epub", limit: int = 48) -> str:
    """A short ASCII file name Send-to-Kindle and every mail client accept."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    stem = _UNSAFE.sub("-", ascii_title).strip("-").lower() or "newsletter"
    prefix = f"{date:%Y-%m-%d}-" if date else ""
    room = max(8, limit - len(prefix) - len(suffix))
    stem = stem[:room].rstrip("-")
    return f"{prefix}{stem}{suffix}"
