"""A small deployment for digest and cleanup tests: real database, inbox, storage and mailer.

Newsletters arrive as raw MIME in the inbox and go through the real per-email
steps (parse, route, record, clean, images, EPUB, store, deliver), which hold
them for the user's digest, exactly as the per-email job does. Only the
arrival time is chosen by the test (it is what digests are computed from).
The newsletters are written here for these tests, in plain platform-neutral HTML.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

from inbox_pipeline_tests.helpers import email_message, epub_chapter_texts, normalise, via_ses

SENDER = "digests@pipeline.example"
DOMAIN = "in.example"
TOPICS = (
    ("The Harbour Log", "harbour-log.example", "tide tables, ferry timetables and the boats that keep them"),
    ("Field Notes", "field-notes.example", "hedgerows, owls and what the frost did to the allotments"),
    ("Workshop Weekly", "workshop.example", "planes, chisels and a bench built from a fallen oak"),
    ("Night Sky", "night-sky.example", "the moon's phases and where to stand to see the comet"),
)


@dataclass(frozen=True)
class Arrival:
    number: int  # unique per test: the marker inside the text
    user: str  # the user's email
    received_at: datetime
    sender_name: str
    subject: str

    @property
    def marker(self) -> str:
        return f"marker{self.number:03d}"


def newsletter_mime(
    *, number: int, to: str, sender_name: str, sender_domain: str, subject: str, received_at: datetime,
    line: str, image: bytes | None = None,
) -> bytes:
    msg = email_message(
        sender=f'"{sender_name}" <issues@{sender_domain}>',
        to=to,
        subject=subject,
        date=format_datetime(received_at),
        message_id=f"<issue-{number}-{received_at:%Y%m%d%H%M}@{sender_domain}>",
        text=f"{subject}\n\nmarker{number:03d}\n",
        list_unsubscribe=f"<https://{sender_domain}/unsubscribe>",
    )
    paragraphs = "".join(
        f"<p>Paragraph {k} of this issue is about {line}. It is long enough to read as an article, "
        f"with a marker for the tests: marker{number:03d}.</p>"
        for k in range(1, 4)
    )
    figure = '<p><img src="cid:photo@digest-test" alt="A photograph" width="800" height="800"></p>' if image else ""
    html = (
        f"<html><body><h1>{subject}</h1>{paragraphs}{figure}"
        f'<p><a href="https://{sender_domain}/unsubscribe">Unsubscribe</a></p></body></html>'
    )
    msg.add_alternative(html, subtype="html")
    if image:
        html_part = msg.get_payload()[1]
        html_part.add_related(image, maintype="image", subtype="jpeg", cid="<photo@digest-test>")
    return via_ses(msg.as_bytes(), to)


@dataclass
class World:
    """Everything one test deployment holds; build with ``World.create``."""

    pipeline: object
    users: dict[str, int] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    arrivals: list[Arrival] = field(default_factory=list)
    newsletter_ids: dict[int, int] = field(default_factory=dict)  # arrival number -> newsletter id

    @classmethod
    def create(
        cls,
        tmp_path: Path,
        database_url: str,
        mailer_uri: str,
        *,
        size_budget_bytes: int = 29 * 1024 * 1024,
        inbox_uri: str | None = None,
        storage_uri: str | None = None,
        epubcheck: bool = False,
        trusted_authserv_ids: tuple[str, ...] = ("amazonses.com",),
    ) -> "World":
        from inbox_pipeline.services.context import Pipeline, PipelineOptions
        from inbox_pipeline_tests.conftest import migrated

        migrated(database_url)
        pipeline = Pipeline(
            database_url=database_url,
            inbox_uri=inbox_uri or str(tmp_path / "inbox"),
            storage_uri=storage_uri or str(tmp_path / "storage"),
            mailer_uri=mailer_uri,
            options=PipelineOptions(
                sender=SENDER, fetch_images=False, epubcheck=epubcheck, size_budget_bytes=size_budget_bytes,
                trusted_authserv_ids=trusted_authserv_ids,
            ),
        )
        return cls(pipeline)

    def add_user(self, email: str, *, timezone: str, delivery: str, kindle: str | None) -> int:
        from inbox_pipeline.db.users import add_user, issue_address

        with self.pipeline.sessions.begin() as session:
            user = add_user(
                session, email=email, timezone=timezone, delivery=delivery, plan="unlimited", kindle=kindle
            )
            self.users[email] = user.id
            self.addresses[email] = issue_address(session, user.id, "news", domain=DOMAIN).address
            return user.id

    def mime(self, user: str, received_at: datetime, *, topic: int = 0, image: bytes | None = None,
             to: str | None = None) -> tuple[Arrival, bytes]:
        """A new newsletter (its own number and marker) for ``user``'s inbound address."""
        number = len(self.arrivals) + 1
        name, domain, line = TOPICS[topic % len(TOPICS)]
        subject = f"{name}: issue {number}"
        raw = newsletter_mime(
            number=number, to=to or self.addresses[user], sender_name=name, sender_domain=domain, subject=subject,
            received_at=received_at, line=line, image=image,
        )
        arrival = Arrival(number, user, received_at, name, subject)
        self.arrivals.append(arrival)
        return arrival, raw

    def register(self, raw: bytes, received_at: datetime) -> int:
        """The email lands in the inbox and is registered: its id."""
        from inbox_pipeline.db.intake import register_inbound

        p = self.pipeline
        key = f"{received_at:%Y%m%dT%H%M%S}-{hashlib.sha256(raw).hexdigest()[:8]}.eml"
        p.inbox.put(key, raw)
        archived = p.inbox.archive(key)
        with p.sessions.begin() as session:
            row, _ = register_inbound(
                session, storage_key=archived, size=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
                received_at=received_at,
            )
            return row.id

    def ingest(self, raw: bytes, received_at: datetime):
        """The email lands in the inbox, is registered, parsed and routed: (email id, parsed, route outcome)."""
        from inbox_pipeline.services.process import parse_inbound
        from inbox_pipeline.services.route import route_parsed

        email_id = self.register(raw, received_at)
        parsed = parse_inbound(self.pipeline, email_id)
        return email_id, parsed, route_parsed(self.pipeline, parsed)

    def arrive(
        self, user: str, received_at: datetime, *, topic: int = 0, image: bytes | None = None,
        expect: str = "held_for_digest", raw: bytes | None = None,
    ) -> Arrival:
        """A newsletter lands in the inbox at ``received_at`` and goes through the per-email steps.

        Digest users' newsletters end held for the digest (``expect``); instant users' are sent.
        """
        from inbox_pipeline.services.deliver import deliver_epub
        from inbox_pipeline.services.process import (
            build_newsletter_epub,
            clean_newsletter,
            embed_images,
            store_newsletter_epub,
        )
        from inbox_pipeline.services.route import record_newsletter

        if raw is None:
            arrival, raw = self.mime(user, received_at, topic=topic, image=image)
        else:
            arrival = self.arrivals[-1]
        p = self.pipeline
        _, parsed, routed = self.ingest(raw, received_at)
        ref, reason = record_newsletter(p, parsed, routed)
        assert ref is not None, reason
        epub = store_newsletter_epub(p, build_newsletter_epub(p, embed_images(p, clean_newsletter(p, ref))))
        outcome = deliver_epub(p, epub)
        assert outcome.status == expect, outcome
        self.newsletter_ids[arrival.number] = ref.newsletter_id
        return arrival

    def fail_midway(self, user: str, received_at: datetime, reason: str) -> tuple[int, int]:
        """A newsletter whose run failed after cleaning and images (its work files left behind)."""
        from inbox_pipeline.services.process import clean_newsletter, embed_images, fail_email
        from inbox_pipeline.services.route import record_newsletter

        arrival, raw = self.mime(user, received_at)
        email_id, parsed, routed = self.ingest(raw, received_at)
        ref, _ = record_newsletter(self.pipeline, parsed, routed)
        assert ref is not None
        embed_images(self.pipeline, clean_newsletter(self.pipeline, ref))
        fail_email(self.pipeline, email_id, reason, newsletter_id=ref.newsletter_id)
        self.newsletter_ids[arrival.number] = ref.newsletter_id
        return email_id, ref.newsletter_id

    def close(self) -> None:
        self.pipeline.close()


@dataclass(frozen=True)
class ReceivedDigest:
    to: str
    subject: str
    file_name: str
    epub: bytes
    chapters: list[str]

    def markers(self) -> list[str]:
        """The test markers of the chapters, in reading order."""
        found = []
        for text in self.chapters:
            words = [w for w in normalise(text).split("marker")[1:]]
            numbers = {f"marker{w[:3]}" for w in words if w[:3].isdigit()}
            assert len(numbers) == 1, f"a chapter should hold exactly one newsletter: {numbers}"
            found.append(numbers.pop())
        return found


def received_digests(raw_messages: list[bytes]) -> list[ReceivedDigest]:
    """The EPUB emails among ``raw_messages`` (as the SMTP server or outbox got them)."""
    result = []
    for raw in raw_messages:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        for part in msg.iter_attachments():
            if part.get_content_type() == "application/epub+zip":
                data = part.get_content()
                result.append(
                    ReceivedDigest(
                        to=str(msg["To"]), subject=str(msg["Subject"]), file_name=part.get_filename() or "",
                        epub=data, chapters=epub_chapter_texts(data),
                    )
                )
    return result


def outbox_messages(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("*.eml"))] if folder.exists() else []

