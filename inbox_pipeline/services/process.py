"""Parse, clean, embed images, build, store and validate one email's EPUB.

Large artefacts never travel between steps as values: the raw email stays in
the inbox archive, intermediate XHTML and images go to a per-newsletter work
area (``work/newsletter-<id>/``), the EPUB to ``epubs/`` in storage. Steps pass
small summaries (ids, keys, counts) that Dagster can show and persist.

The work area is durable by default (in storage: each stage can be its own
step, and a step re-executed in a new process finds what the one before it
left). A step that runs several stages itself (a worker run's
``work_queue``) passes ``WorkArea.in_memory()``: a retry redoes all of its
stages, so nothing in between needs to outlive the step, and clean .. check
then make one storage call (the EPUB's put) instead of fifteen.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from inbox_pipeline.core import convert
from inbox_pipeline.core.classify import classify
from inbox_pipeline.core.convert import (
    ConvertOptions,
    clean_email,
    email_title,
    newsletter_book,
    newsletter_chapter,
    resolve_policy,
    write_book,
)
from inbox_pipeline.core.envelope import envelope_recipients
from inbox_pipeline.core.epubcheck import run_epubcheck
from inbox_pipeline.core.images import EpubImage, ImagePolicy
from inbox_pipeline.core.message import EmailParseError, ParsedEmail
from inbox_pipeline.core.parse import parse_email
from inbox_pipeline.core.preflight import kindle_preflight
from inbox_pipeline.db.intake import advance_state, get_inbound, mark_parsed, raw_key, set_state
from inbox_pipeline.db.models import DeliveryMode, InboundState, NewsletterStatus
from inbox_pipeline.db.newsletters import (
    get_newsletter,
    newsletter_of_email,
    set_newsletter_article,
    set_newsletter_epub,
    set_newsletter_status,
)
from inbox_pipeline.db.users import find_user
from inbox_pipeline.seams import ObjectNotFound, ObjectTooLarge, Storage
from inbox_pipeline.services.context import PermanentStepError, Pipeline

WORDS_PER_MINUTE = 230


@dataclass(frozen=True)
class ParsedSummary:
    email_id: int
    storage_key: str
    size: int
    message_id: str
    subject: str
    sender: str  # "Name <address>"
    sender_email: str
    recipients: tuple[str, ...]  # the envelope's (see core.envelope.envelope_recipients): what routing reads
    content_sha256: str
    kind: str  # newsletter | confirmation | transactional
    kind_reason: str
    confirm_link: str | None = None
    quarantine_reason: str | None = None
    platform_hint: str | None = None  # from headers, for the UI only
    envelope_note: str = ""  # where the recipients came from, or why there are none


@dataclass(frozen=True)
class UnreadableEmail:
    """Input that is not an email: recorded as ``unreadable`` with its reason, nothing more to do."""

    email_id: int
    storage_key: str
    size: int
    reason: str


class NotAnEmail(PermanentStepError):
    """The raw bytes are not an email (``EmailParseError``): an answer about the input, not a fault."""


@dataclass(frozen=True)
class NewsletterRef:
    newsletter_id: int
    email_id: int
    user_id: int
    user_email: str
    subject: str
    sender: str
    storage_key: str  # the raw email in the inbox archive


@dataclass(frozen=True)
class CleanedSummary:
    newsletter: NewsletterRef
    key: str  # storage key of the cleaned XHTML fragment
    title: str
    words: int
    platform: str
    language: str
    removed: int


@dataclass(frozen=True)
class ImagesSummary:
    cleaned: CleanedSummary
    body_key: str  # the fragment with images rewritten
    images_key: str  # a zip of the images, with a manifest
    kept: int
    dropped: int
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuiltEpub:
    images: ImagesSummary
    work_key: str
    file_name: str
    bytes: int


@dataclass(frozen=True)
class EpubSummary:
    newsletter_id: int
    email_id: int
    user_id: int
    subject: str
    sender: str
    key: str  # storage key
    file_name: str
    title: str
    bytes: int
    words: int
    images: int
    reading_minutes: int
    held_for_digest: bool = False


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    problems: tuple[str, ...] = ()
    checks: tuple[str, ...] = field(default_factory=tuple)  # which validators ran


def work_key(newsletter_id: int, name: str) -> str:
    return f"work/newsletter-{newsletter_id}/{name}"


WORK_FILES = ("article.xhtml", "body.xhtml", "images.zip", "book.epub")  # what the stages leave in the work area


class WorkArea:
    """Where one newsletter's intermediate artefacts wait between stages (see the module docstring)."""

    def __init__(self, storage: Storage | None) -> None:
        self._storage = storage
        self._memory: dict[str, bytes] = {}

    @classmethod
    def durable(cls, pipeline: Pipeline) -> "WorkArea":
        return cls(pipeline.storage)

    @classmethod
    def in_memory(cls) -> "WorkArea":
        return cls(None)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if self._storage is None:
            self._memory[key] = data
        else:
            self._storage.put(key, data, content_type)

    def get(self, key: str) -> bytes:
        if self._storage is not None:
            return self._storage.get(key)
        try:
            return self._memory[key]
        except KeyError:
            raise ObjectNotFound(f"no {key} in this step's work area") from None

    def exists(self, key: str) -> bool:
        return key in self._memory if self._storage is None else self._storage.exists(key)

    def delete(self, key: str) -> None:
        if self._storage is None:
            self._memory.pop(key, None)
        else:
            self._storage.delete(key)

    def hold(self, key: str, data: bytes) -> None:
        """Keep a copy of what was just stored under ``key`` for the stages after it in this step
        (in memory only: a durable work area reads it from storage)."""
        if self._storage is None:
            self._memory[key] = data


# --- the raw email, parsed once per run ----------------------------------------


def load_email(pipeline: Pipeline, storage_key: str) -> ParsedEmail:
    """The parsed email from the inbox archive, parsed once per ``Pipeline`` (a run or a tick)."""
    kept = pipeline.parsed_email(storage_key)
    if kept is not None:
        return kept
    try:
        raw = pipeline.take_raw(storage_key)  # read when this run took it from the inbox
        if raw is None:
            raw = pipeline.inbox.read_archived(storage_key)
    except ObjectNotFound as exc:
        raise PermanentStepError(f"the raw email is missing from the archive: {exc}") from None
    except ObjectTooLarge as exc:
        raise PermanentStepError(f"not a readable email: {exc}") from None
    try:
        email = parse_email(raw)
    except EmailParseError as exc:
        raise NotAnEmail(str(exc)) from None
    pipeline.keep_parsed(storage_key, email)
    return email


def content_hash(email: ParsedEmail) -> str:
    """Same sender, subject and body text: the same newsletter re-sent (whatever its headers)."""
    body = " ".join((email.html or email.text or "").split())
    text = "\n".join([email.sender.email, " ".join(email.subject.split()), body])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def fail_email(pipeline: Pipeline, email_id: int, reason: str, *, newsletter_id: int | None = None) -> None:
    """Record a failure with its reason (the email and its newsletter, if any); never raises on a finished row."""
    with pipeline.sessions.begin() as session:
        # False: already failed, or finished (delivered) before this failure: kept.
        advance_state(session, email_id, InboundState.FAILED, reason[:2000])
        if newsletter_id is not None:
            set_newsletter_status(session, newsletter_id, NewsletterStatus.FAILED, reason[:2000])


# --- steps -----------------------------------------------------------------------


def parse_inbound(pipeline: Pipeline, email_id: int) -> ParsedSummary | UnreadableEmail:
    """What parsing found; input that is not an email ends ``unreadable`` (terminal, nobody alerted)."""
    with pipeline.sessions() as session:
        row = get_inbound(session, email_id)
        storage_key, size = raw_key(session, row), row.size
    try:
        email = load_email(pipeline, storage_key)
    except NotAnEmail as exc:
        reason = str(exc)[:2000]
        with pipeline.sessions.begin() as session:
            set_state(session, email_id, InboundState.UNREADABLE, reason)
        return UnreadableEmail(email_id, storage_key, size, reason)
    except PermanentStepError as exc:
        fail_email(pipeline, email_id, str(exc))
        raise
    classification = classify(email)
    recipients, envelope_note = envelope_recipients(email, pipeline.inbox.trusted_receivers)
    with pipeline.sessions.begin() as session:
        mark_parsed(
            session,
            email_id,
            message_id=email.message_id,
            subject=email.subject,
            sender=str(email.sender),
            recipients=list(recipients),
        )
    return ParsedSummary(
        email_id=email_id,
        storage_key=storage_key,
        size=size,
        message_id=email.message_id,
        subject=email.subject,
        sender=str(email.sender),
        sender_email=email.sender.email,
        recipients=tuple(recipients),
        envelope_note=envelope_note,
        content_sha256=content_hash(email),
        kind=classification.kind,
        kind_reason=classification.reason,
        confirm_link=classification.confirm_link,
        quarantine_reason=email.verdicts.quarantine_reason,
    )


def image_policy(pipeline: Pipeline) -> ImagePolicy:
    """The image policy of this deployment (fetching on or off, its disk cache)."""
    options = pipeline.options
    return resolve_policy(ConvertOptions(fetch_images=options.fetch_images, image_cache_dir=options.image_cache_dir))


def clean_newsletter(pipeline: Pipeline, ref: NewsletterRef, work: WorkArea | None = None) -> CleanedSummary:
    """``core.convert.clean_email``; the article goes to the work area, its facts to the newsletter row."""
    email = load_email(pipeline, ref.storage_key)
    article = clean_email(email)
    key = work_key(ref.newsletter_id, "article.xhtml")
    (work or WorkArea.durable(pipeline)).put(key, article.html.encode("utf-8"), "application/xhtml+xml")
    with pipeline.sessions.begin() as session:
        set_newsletter_article(
            session, ref.newsletter_id, platform=article.platform, language=article.language, words=article.words
        )
    removed = article.removed if isinstance(article.removed, int) else len(article.removed or ())
    return CleanedSummary(
        newsletter=ref,
        key=key,
        title=email_title(email, article),
        words=article.words,
        platform=article.platform,
        language=article.language,
        removed=removed,
    )


def embed_images(pipeline: Pipeline, cleaned: CleanedSummary, work: WorkArea | None = None) -> ImagesSummary:
    """``core.convert.embed_images`` on the stored article; body and images go to the work area."""
    nid = cleaned.newsletter.newsletter_id
    work = work or WorkArea.durable(pipeline)
    email = load_email(pipeline, cleaned.newsletter.storage_key)
    html = work.get(cleaned.key).decode("utf-8")
    result = convert.embed_images(email, html, image_policy(pipeline))
    body_key = work_key(nid, "body.xhtml")
    images_key = work_key(nid, "images.zip")
    work.put(body_key, result.html.encode("utf-8"), "application/xhtml+xml")
    work.put(images_key, pack_images(result.images), "application/zip")
    return ImagesSummary(
        cleaned=cleaned,
        body_key=body_key,
        images_key=images_key,
        kept=result.kept,
        dropped=result.dropped,
        reasons=tuple(result.reasons[:50]),
    )


def pack_images(images: list[EpubImage]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        manifest = []
        for n, image in enumerate(images):
            member = f"{n:04d}"
            zf.writestr(member, image.data)
            manifest.append({"member": member, "file_name": image.file_name, "media_type": image.media_type})
        zf.writestr("manifest.json", json.dumps(manifest))
    return buffer.getvalue()


def unpack_images(data: bytes) -> list[EpubImage]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        return [EpubImage(m["file_name"], m["media_type"], zf.read(m["member"])) for m in manifest]


def build_newsletter_epub(pipeline: Pipeline, images: ImagesSummary, work: WorkArea | None = None) -> BuiltEpub:
    """``core.convert`` chapter, book and EPUB from the stored body and images, into the work area."""
    cleaned = images.cleaned
    ref = cleaned.newsletter
    work = work or WorkArea.durable(pipeline)
    email = load_email(pipeline, ref.storage_key)
    chapter = newsletter_chapter(
        email,
        title=cleaned.title,
        language=cleaned.language,
        body_html=work.get(images.body_key).decode("utf-8"),
        images=unpack_images(work.get(images.images_key)),
    )
    written = write_book(newsletter_book(email, chapter), email)
    key = work_key(ref.newsletter_id, "book.epub")
    work.put(key, written.epub, "application/epub+zip")
    return BuiltEpub(images, key, written.file_name, len(written.epub))


def store_newsletter_epub(pipeline: Pipeline, built: BuiltEpub, work: WorkArea | None = None) -> EpubSummary:
    """Move the EPUB to its lasting key, record size, words, images and reading time, empty the work area."""
    images = built.images
    cleaned = images.cleaned
    ref = cleaned.newsletter
    storage = pipeline.storage
    work = work or WorkArea.durable(pipeline)
    key = f"epubs/{ref.user_id}/{ref.newsletter_id}/{built.file_name}"
    if work.exists(built.work_key):
        data = work.get(built.work_key)
        storage.put(key, data, "application/epub+zip")
    else:  # a re-executed step: stored before, the work area already tidied
        data = storage.get(key)

    minutes = max(1, math.ceil(cleaned.words / WORDS_PER_MINUTE))
    with pipeline.sessions.begin() as session:
        user = find_user(session, ref.user_id)
        held = user is not None and user.delivery_mode != DeliveryMode.INSTANT.value
        row = get_newsletter(session, ref.newsletter_id)
        if row.status in (
            NewsletterStatus.PENDING.value,
            NewsletterStatus.READY.value,
            NewsletterStatus.HELD_FOR_DIGEST.value,
            NewsletterStatus.FAILED.value,
        ):
            set_newsletter_epub(
                session,
                ref.newsletter_id,
                epub_key=key,
                epub_bytes=len(data),
                words=cleaned.words,
                images=images.kept,
                reading_minutes=minutes,
                status=NewsletterStatus.HELD_FOR_DIGEST if held else NewsletterStatus.READY,
            )
    for name in WORK_FILES:
        work.delete(work_key(ref.newsletter_id, name))
    work.hold(key, data)  # for the check that follows
    return EpubSummary(
        newsletter_id=ref.newsletter_id,
        email_id=ref.email_id,
        user_id=ref.user_id,
        subject=ref.subject,
        sender=ref.sender,
        key=key,
        file_name=built.file_name,
        title=cleaned.title,
        bytes=len(data),
        words=cleaned.words,
        images=images.kept,
        reading_minutes=minutes,
        held_for_digest=held,
    )


def validate_epub(pipeline: Pipeline, epub: EpubSummary, work: WorkArea | None = None) -> CheckOutcome:
    """The Kindle preflight always, EPUBCheck too when enabled; a failure is recorded on the email.

    Checks the stored EPUB (an in-memory work area holds the copy its step just stored)."""
    data = (work or WorkArea.durable(pipeline)).get(epub.key)
    outcome = check_epub_bytes(data, epubcheck=pipeline.options.epubcheck)
    if not outcome.passed:
        reason = "the EPUB failed validation: " + "; ".join(outcome.problems[:5])
        fail_email(pipeline, epub.email_id, reason, newsletter_id=epub.newsletter_id)
    return outcome


def check_epub_bytes(data: bytes, *, epubcheck: bool) -> CheckOutcome:
    problems = [f"Kindle preflight: {p}" for p in kindle_preflight(data)]
    checks = ["kindle_preflight"]
    if epubcheck:
        checks.append("epubcheck")
        # EpubCheckUnavailable (no Java) is raised: our configuration, not the EPUB (the email waits)
        report = run_epubcheck(data)
        problems += [f"EPUBCheck: {m}" for m in [*report.fatals, *report.errors]]
    return CheckOutcome(passed=not problems, problems=tuple(problems), checks=tuple(checks))


# States in which a failed run leaves work unfinished (anything else was recorded by the ops).
_UNFINISHED = ("received", "parsed", "routed", "ready")


def record_run_failure(pipeline: Pipeline, email_id: int, reason: str) -> bool:
    """A run died without recording why: mark its email failed if it is still mid-way. True if changed."""
    with pipeline.sessions() as session:
        state = get_inbound(session, email_id).state
        if state not in _UNFINISHED:
            return False
        if state == "ready":
            newsletter = newsletter_of_email(session, email_id)
            status = newsletter.status if newsletter is not None else None
            if status in (NewsletterStatus.HELD_FOR_DIGEST.value, NewsletterStatus.NO_DEVICE.value):
                return False  # finished: waiting for the digest or a Kindle address
    fail_email(pipeline, email_id, reason)
    return True
