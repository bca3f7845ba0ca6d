"""SQLAlchemy 2 models of the app database (same schema on SQLite and PostgreSQL).

Every timestamp is stored in UTC and read back timezone-aware (``UtcDateTime``),
because SQLite has no timezone type. States are plain strings checked against
the enums below, so adding a state never needs an ALTER TYPE.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both dialects; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware value")
        value = value.astimezone(timezone.utc)
        # SQLite stores text: keep it naive UTC so string order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class InboundState(enum.StrEnum):
    RECEIVED = "received"
    PARSED = "parsed"
    ROUTED = "routed"
    UNROUTABLE = "unroutable"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    UNREADABLE = "unreadable"  # not an email (binary data, an image, text without headers)
    CONFIRMATION_FORWARDED = "confirmation_forwarded"
    OVER_QUOTA = "over_quota"
    READY = "ready"
    DELIVERED = "delivered"
    FAILED = "failed"
    WAITING = "waiting"  # held by an outage of ours (mailer, storage, EPUBCheck); resumed when it clears
    KINDLE_NOTICE = "kindle_notice"  # operational mail to the sender address (Amazon's notices), never a newsletter


class NewsletterStatus(enum.StrEnum):
    PENDING = "pending"  # row exists, EPUB not built yet
    READY = "ready"  # EPUB stored, waiting for instant delivery
    HELD_FOR_DIGEST = "held_for_digest"  # EPUB stored, waits for the user's digest
    IN_DIGEST = "in_digest"  # taken into a digest
    DELIVERED = "delivered"
    OVER_QUOTA = "over_quota"
    NO_DEVICE = "no_device"  # kept: the user has no Kindle address
    FAILED = "failed"


class DeliveryMode(enum.StrEnum):
    INSTANT = "instant"
    DAILY = "daily"
    WEEKLY = "weekly"


class DigestStatus(enum.StrEnum):
    PENDING = "pending"  # members chosen, EPUB not built/sent yet
    EMPTY = "empty"  # nothing new in the period: nothing is sent
    READY = "ready"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryStatus(enum.StrEnum):
    CLAIMED = "claimed"  # claimed before sending; not finished (yet)
    SENT = "sent"
    FAILED = "failed"
    REJECTED = "rejected"  # the relay accepted it, then Amazon sent a notice that it failed


class DeliveryVariant(enum.StrEnum):
    STANDARD = "standard"
    SAFE_MODE = "safe_mode"  # the one automatic resend after a conversion error: no images, plain metadata
    RESEND = "resend"  # sent again after the user approved our sender address


class KindleCheck(enum.StrEnum):
    """Whether a Kindle address is proven ready (``inbox-pipeline kindle verify``)."""

    UNCHECKED = "unchecked"
    PENDING = "pending"  # a test book was accepted by the relay; no notice yet
    VERIFIED = "verified"  # the window passed with no notice, or the user confirmed it arrived
    REJECTED = "rejected"  # Amazon sent a notice; the reason says which
    UNCONFIRMED = "unconfirmed"  # the test book could not be sent


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    DEFERRED = "deferred"  # sent at ``send_after`` if still true then
    WITHDRAWN = "withdrawn"  # no longer true when it was to be sent (e.g. delivered since)


def _in(column: str, values: type[enum.Enum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


# Explicit constraint names: identical on both dialects, so Alembic compares cleanly.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime()}


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    monthly_limit: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("monthly_limit IS NULL OR monthly_limit >= 0", name="limit_not_negative"),)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    timezone: Mapped[str] = mapped_column(String(64))  # IANA name
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    delivery_mode: Mapped[str] = mapped_column(String(16), default=DeliveryMode.INSTANT.value)
    delivery_hour: Mapped[int | None] = mapped_column(Integer)  # 0-23, local time
    delivery_weekday: Mapped[int | None] = mapped_column(Integer)  # 0=Monday .. 6=Sunday
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    plan: Mapped[Plan] = relationship(lazy="joined")
    addresses: Mapped[list[InboundAddress]] = relationship(back_populates="user", order_by="InboundAddress.id")
    devices: Mapped[list[KindleDevice]] = relationship(back_populates="user", order_by="KindleDevice.id")

    __table_args__ = (
        CheckConstraint(_in("delivery_mode", DeliveryMode), name="delivery_mode_valid"),
        CheckConstraint(
            "(delivery_mode = 'instant' AND delivery_hour IS NULL AND delivery_weekday IS NULL)"
            " OR (delivery_mode = 'daily' AND delivery_hour BETWEEN 0 AND 23 AND delivery_weekday IS NULL)"
            " OR (delivery_mode = 'weekly' AND delivery_hour BETWEEN 0 AND 23 AND delivery_weekday BETWEEN 0 AND 6)",
            name="delivery_consistent",
        ),
    )

    @property
    def kindle(self) -> KindleDevice | None:
        """The device deliveries go to (the active one), if any."""
        return next((d for d in self.devices if d.active), None)


class InboundAddress(Base):
    __tablename__ = "inbound_addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)  # "alias@domain", lower-cased
    label: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(back_populates="addresses")


class KindleDevice(Base):
    __tablename__ = "kindle_devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))  # the Send-to-Kindle address
    name: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    check_state: Mapped[str] = mapped_column(String(16), default=KindleCheck.UNCHECKED.value)
    check_reason: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(back_populates="devices")

    __table_args__ = (
        UniqueConstraint("user_id", "email"),
        CheckConstraint(_in("check_state", KindleCheck), name="check_state_valid"),
    )


class UsageCounter(Base):
    """Deliverable newsletters counted per user and month (``period`` "YYYY-MM", user's zone)."""

    __tablename__ = "usage_counters"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class InboundEmail(Base):
    __tablename__ = "inbound_emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    storage_key: Mapped[str] = mapped_column(String(1024), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))  # of the raw bytes
    state: Mapped[str] = mapped_column(String(32), default=InboundState.RECEIVED.value, index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    subject: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(998))
    recipients: Mapped[list[str] | None] = mapped_column(JSON)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    address_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_addresses.id", ondelete="SET NULL"))
    # Set only on the email that won routing: the unique constraints below are
    # what makes de-duplication safe when two runs route copies at once.
    dedup_message_id: Mapped[str | None] = mapped_column(String(998))
    dedup_content_sha256: Mapped[str | None] = mapped_column(String(64))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_emails.id", ondelete="SET NULL"))
    # A copy for a further user among the envelope recipients: it reads the raw email
    # of ``fanout_of_id`` and is routed to its own ``address_id`` only.
    fanout_of_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_emails.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The worker runs' work queue (db/queue.py). ``queued_at``: set while the email waits for a worker run
    # or is being worked on by one (``claimed_by``: its root run id); cleared when the worker is done with
    # it. ``fair_key`` (its first envelope recipient) is whose turn a claim counts for; ``claimed_at`` is
    # kept after, as when that key was last served. ``attempts``: claims so far; ``not_before``: a retry's
    # back-off.
    queued_at: Mapped[datetime | None] = mapped_column(index=True)
    fair_key: Mapped[str | None] = mapped_column(String(320))
    claimed_by: Mapped[str | None] = mapped_column(String(64), index=True)
    claimed_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    not_before: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(_in("state", InboundState), name="state_valid"),
        UniqueConstraint("user_id", "dedup_message_id"),
        UniqueConstraint("user_id", "dedup_content_sha256"),
        Index("ix_inbound_emails_fair_key_claimed_at", "fair_key", "claimed_at"),
    )


class Newsletter(Base):
    __tablename__ = "newsletters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_email_id: Mapped[int] = mapped_column(ForeignKey("inbound_emails.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    address_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_addresses.id", ondelete="SET NULL"))
    sender_name: Mapped[str] = mapped_column(String(998), default="")
    sender_email: Mapped[str] = mapped_column(String(998), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column()
    message_id: Mapped[str | None] = mapped_column(String(998))
    raw_key: Mapped[str] = mapped_column(String(1024))  # storage key of the raw email
    raw_html: Mapped[str | None] = mapped_column(Text)
    platform: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(35))
    status: Mapped[str] = mapped_column(String(32), default=NewsletterStatus.PENDING.value)
    reason: Mapped[str | None] = mapped_column(Text)
    epub_key: Mapped[str | None] = mapped_column(String(1024))
    epub_bytes: Mapped[int | None] = mapped_column(BigInteger)
    words: Mapped[int | None] = mapped_column(Integer)
    images: Mapped[int | None] = mapped_column(Integer)
    reading_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(_in("status", NewsletterStatus), name="status_valid"),
        Index("ix_newsletters_user_id_status", "user_id", "status"),
    )


class Digest(Base):
    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    period_key: Mapped[str] = mapped_column(String(32))  # "daily:2026-03-29" / "weekly:2026-W13"
    period_start: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=DigestStatus.PENDING.value)
    reason: Mapped[str | None] = mapped_column(Text)
    epub_keys: Mapped[list[str] | None] = mapped_column(JSON)  # one per volume
    epub_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()

    members: Mapped[list[DigestMember]] = relationship(order_by="DigestMember.position")

    __table_args__ = (
        UniqueConstraint("user_id", "period_key"),
        CheckConstraint(_in("status", DigestStatus), name="status_valid"),
    )


class DigestMember(Base):
    __tablename__ = "digest_members"

    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True)
    # unique: a newsletter goes into one digest only
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletters.id", ondelete="CASCADE"), unique=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based, oldest first
    volume: Mapped[int] = mapped_column(Integer, default=1)


class Delivery(Base):
    """The delivery ledger: one row per (item, part, recipient), claimed before sending."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_kind: Mapped[str] = mapped_column(String(16))  # "newsletter" | "digest"
    item_id: Mapped[int] = mapped_column(Integer)
    part: Mapped[int] = mapped_column(Integer, default=1)  # digest volume; 1 otherwise
    recipient: Mapped[str] = mapped_column(String(320))  # lower-cased
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("kindle_devices.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.CLAIMED.value)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    reason: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    claimed_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    variant: Mapped[str] = mapped_column(String(16), default=DeliveryVariant.STANDARD.value)
    # Unguessable; in the attachment's file name and the Message-ID, so Amazon's notice names this row.
    token: Mapped[str | None] = mapped_column(String(16), unique=True)
    rejection_cause: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        UniqueConstraint("item_kind", "item_id", "part", "recipient", "variant"),
        CheckConstraint(_in("status", DeliveryStatus), name="status_valid"),
        CheckConstraint(_in("variant", DeliveryVariant), name="variant_valid"),
        CheckConstraint("item_kind IN ('newsletter', 'digest', 'kindle_check')", name="item_kind_valid"),
        Index("ix_deliveries_status_claimed_at", "status", "claimed_at"),
    )


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    dedup_key: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING.value)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    send_after: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("user_id", "kind", "dedup_key"),
        CheckConstraint(_in("status", NotificationStatus), name="status_valid"),
    )


class KindleNotice(Base):
    """A notice that arrived at the sender address: what it said, whether it was trusted, what was done."""

    __tablename__ = "kindle_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_email_id: Mapped[int] = mapped_column(
        ForeignKey("inbound_emails.id", ondelete="CASCADE"), unique=True
    )
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"), index=True)
    cause: Mapped[str] = mapped_column(String(16))  # "conversion", "not_approved", "unknown"
    code: Mapped[str | None] = mapped_column(String(8))
    authentic: Mapped[bool] = mapped_column(Boolean)
    trust_reason: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(32))  # what was done: safe_mode_resend, user_told, ...
    summary: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SendPace(Base):
    """The one send-rate limiter every run and process shares (``core/pace.py``'s state), and its
    counters for the operator: sends paced, how many were held back and for how long in all, and
    sends refused because the daily quota was spent."""

    __tablename__ = "send_pace"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sends: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    held_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    refused: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
