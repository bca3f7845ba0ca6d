"""One newsletter's book from one email: the steps, and the one composition of them.

``clean_email`` -> ``embed_images`` -> ``newsletter_chapter`` -> ``newsletter_book``
-> ``write_book``. ``convert_email`` runs them in one call (the ``convert``
command, the benchmark); the pipeline's stages (``services.process``) call the
same steps in the same order, one op each, storing what a re-executed step
needs in between; digests rebuild a lost chapter with ``prepare_chapter``.
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from inbox_pipeline.core.classify import classify
from inbox_pipeline.core.clean import CleanedArticle, clean_html
from inbox_pipeline.core.epub import Book, Chapter, build_epub
from inbox_pipeline.core.images import EpubImage, ImagePolicy, ImagesResult, process_images
from inbox_pipeline.core.message import Classification, ParsedEmail
from inbox_pipeline.core.names import safe_file_name
from inbox_pipeline.core.parse import parse_email


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert; the defaults suit a preview on the command line."""

    fetch_images: bool = True
    image_policy: ImagePolicy | None = None  # None: ImagePolicy() with fetch_images applied
    image_cache_dir: Path | None = None  # used when the policy names no cache of its own
    # The resend after Amazon could not convert a book: no images, no cover, minimal CSS, plain metadata.
    safe_mode: bool = False


@dataclass(frozen=True)
class PreparedChapter:
    """One email made ready for a book: its cleaned article, images and chapter."""

    email: ParsedEmail
    article: CleanedArticle
    images: ImagesResult
    chapter: Chapter


@dataclass(frozen=True)
class WrittenBook:
    """A book as EPUB bytes, with the file name it travels under."""

    epub: bytes
    file_name: str


@dataclass(frozen=True)
class Conversion(WrittenBook):
    """The written book of one email (``convert_email``), with what each step made on the way."""

    email: ParsedEmail
    classification: Classification
    article: CleanedArticle
    images: ImagesResult
    book: Book
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


def resolve_policy(options: ConvertOptions) -> ImagePolicy:
    policy = options.image_policy or ImagePolicy()
    if options.safe_mode:
        return replace(policy, fetch_remote=False, max_images=0)
    if not options.fetch_images and policy.fetch_remote:
        policy = replace(policy, fetch_remote=False)
    if options.image_cache_dir is not None and policy.cache_dir is None:
        policy = replace(policy, cache_dir=options.image_cache_dir)
    return policy


def email_title(email: ParsedEmail, article: "CleanedArticle | None" = None) -> str:
    """The title a reader sees: the subject, else the article's own title."""
    subject = " ".join((email.subject or "").split())
    if subject:
        return subject
    if article is not None and article.title:
        return article.title
    return email.sender.name or email.sender.email or "Newsletter"


def sender_label(email: ParsedEmail) -> str | None:
    return email.sender.name or email.sender.email or None


# --- the steps ------------------------------------------------------------------


def clean_email(email: ParsedEmail) -> CleanedArticle:
    """Step 1: the article out of the email's HTML, as an XHTML fragment."""
    return clean_html(
        email.html or "",
        headers=email.headers,
        subject=email.subject,
        sender=email.sender.email or None,
    )


def embed_images(email: ParsedEmail, article_html: str, policy: ImagePolicy) -> ImagesResult:
    """Step 2: the article's images made ready for the book (inline parts, fetched, converted)."""
    return process_images(article_html, email.inline_parts, policy)


def newsletter_chapter(
    email: ParsedEmail,
    *,
    title: str,
    language: str,
    body_html: str,
    images: "tuple[EpubImage, ...] | list[EpubImage]",
    group: str | None = None,
) -> Chapter:
    """Step 3: the email as one chapter (``title``: ``email_title``; ``group``: its TOC section in a digest)."""
    sender = sender_label(email)
    return Chapter(
        title=title,
        body_html=body_html,
        images=tuple(images),
        author=sender,
        date=email.date,
        group=group or sender,
        language=language,
        message_id=email.message_id,
    )


def newsletter_book(email: ParsedEmail, chapter: Chapter) -> Book:
    """Step 4: a book holding the one chapter, identified by the email's Message-ID."""
    return Book.for_newsletter(
        message_id=email.message_id,
        title=chapter.title,
        sender=sender_label(email) or "Unknown sender",
        date=email.date or datetime.now(timezone.utc),
        language=chapter.language or "en",
        chapter=chapter,
    )


def write_book(book: Book, email: ParsedEmail) -> WrittenBook:
    """Step 5: the EPUB bytes and their file name."""
    return WrittenBook(build_epub(book), safe_file_name(book.title, email.date))


# --- the composition -------------------------------------------------------------


def prepare_chapter(email: ParsedEmail, *, policy: ImagePolicy, group: str | None = None) -> PreparedChapter:
    """Steps 1-3: clean an email's HTML, embed its images and wrap it as a chapter."""
    article = clean_email(email)
    images = embed_images(email, article.html, policy)
    chapter = newsletter_chapter(
        email,
        title=email_title(email, article),
        language=article.language,
        body_html=images.html,
        images=images.images,
        group=group,
    )
    return PreparedChapter(email, article, images, chapter)


def convert_email(raw: bytes, *, options: ConvertOptions = ConvertOptions()) -> Conversion:
    """Parse, classify, clean, embed images and build the EPUB for one email.

    Raises ``EmailParseError`` (a clear, user-readable reason) for input that is
    not an email; everything else in a real-world email degrades, not fails.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    email = parse_email(raw)
    classification = classify(email)
    t1 = time.perf_counter()
    prepared = prepare_chapter(email, policy=resolve_policy(options))
    t2 = time.perf_counter()
    book = newsletter_book(email, prepared.chapter)
    if options.safe_mode:
        book = plain_metadata(book)
    written = write_book(book, email)
    t3 = time.perf_counter()
    timings.update(parse=(t1 - t0) * 1e3, prepare=(t2 - t1) * 1e3, epub=(t3 - t2) * 1e3)
    return Conversion(
        email=email,
        classification=classification,
        article=prepared.article,
        images=prepared.images,
        book=book,
        epub=written.epub,
        file_name=written.file_name,
        timings_ms=timings,
    )


def plain_metadata(book: Book) -> Book:
    """ASCII title and creator, no description and (``safe_mode``) no cover: what Amazon's converter never trips on."""
    def ascii_only(value: str | None) -> str:
        text = unicodedata.normalize("NFKD", value or "").encode("ascii", "ignore").decode()
        return " ".join(text.split())

    return replace(
        book,
        title=ascii_only(book.title) or "Newsletter",
        creator=ascii_only(book.creator) or "Unknown sender",
        description=None,
        safe_mode=True,  # the writer then draws no cover, so cover_title/cover_subtitle go unread
    )
