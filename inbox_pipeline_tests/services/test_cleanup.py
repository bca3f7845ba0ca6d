"""Cleanup: what is past retention leaves storage and the database; everything else stays.

Emails go through the real per-email steps (and digests through the digest
service) into a real inbox archive and storage, a folder or S3 (moto
server); then each is given its age ("finished 31 days ago") and cleanup runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from inbox_pipeline.db.models import Delivery, Digest, DigestMember, InboundEmail, Newsletter, Notification
from inbox_pipeline.seams import ObjectNotFound
from inbox_pipeline.services.cleanup import CleanupReport, RetentionPolicy, clean_up
from inbox_pipeline.services.digests import compile_and_deliver_due
from inbox_pipeline.services.process import work_key
from inbox_pipeline_tests.services.digest_world import World

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
IVY, JON = "ivy@readers.example", "jon@readers.example"


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class Item:
    email_id: int
    days: int  # finished this many days before NOW
    raw_key: str
    newsletter_id: int | None = None
    epub_key: str | None = None


@pytest.fixture(params=["folder", "s3"])
def world(request, tmp_path, database_url):
    locations = {}
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        locations = {"inbox_uri": f"s3://{bucket}/incoming/", "storage_uri": f"s3://{bucket}/books/"}
    w = World.create(tmp_path, database_url, f"outbox:{tmp_path / 'outbox'}", **locations)
    w.add_user(IVY, timezone="UTC", delivery="instant", kindle="ivy@kindle.example")
    w.add_user(JON, timezone="UTC", delivery="daily@06", kindle="jon@kindle.example")
    yield w
    w.close()


def _item(world: World, email_id: int, days: int) -> Item:
    p = world.pipeline
    with p.sessions.begin() as session:
        session.execute(update(InboundEmail).where(InboundEmail.id == email_id).values(state_changed_at=ago(days)))
        raw_key = session.get(InboundEmail, email_id).storage_key
        newsletter = session.scalar(select(Newsletter).where(Newsletter.inbound_email_id == email_id))
        return Item(email_id, days, raw_key, newsletter.id if newsletter else None,
                    newsletter.epub_key if newsletter else None)


def _email_id(world: World, arrival) -> int:
    with world.pipeline.sessions() as session:
        return session.scalar(
            select(Newsletter.inbound_email_id).where(Newsletter.id == world.newsletter_ids[arrival.number])
        )


def _raw_there(world: World, key: str) -> bool:
    try:
        world.pipeline.inbox.read_archived(key)
        return True
    except ObjectNotFound:
        return False


def _row_there(world: World, email_id: int) -> bool:
    with world.pipeline.sessions() as session:
        return session.get(InboundEmail, email_id) is not None


def _resend(world: World, email_id: int) -> bytes:
    """The same newsletter delivered again (same Message-ID), as mail servers sometimes do."""
    with world.pipeline.sessions() as session:
        key = session.get(InboundEmail, email_id).storage_key
    return world.pipeline.inbox.read_archived(key).replace(b"\nDate:", b"\nX-Resent: yes\nDate:", 1)


def build_history(world: World) -> tuple[dict[str, Item], dict[str, list[str]]]:
    """Emails in every final state and two delivered digests, each with its age."""
    p = world.pipeline
    items: dict[str, Item] = {}
    old = world.arrive(IVY, ago(40), expect="sent")
    items["delivered 31 days ago"] = _item(world, _email_id(world, old), 31)
    young = world.arrive(IVY, ago(35), expect="sent")
    items["delivered 29 days ago"] = _item(world, _email_id(world, young), 29)
    dup_email, _, route = world.ingest(_resend(world, items["delivered 31 days ago"].email_id), ago(5))
    assert route.state == "duplicate"
    items["duplicate of the old one, 5 days ago"] = _item(world, dup_email, 5)
    _, stray = world.mime(IVY, ago(40), to="nobody@in.example")
    stray_email, _, route = world.ingest(stray, ago(40))
    assert route.state == "unroutable"
    items["unroutable 31 days ago"] = _item(world, stray_email, 31)
    email_id, _ = world.fail_midway(IVY, ago(40), "the images step failed")
    items["failed 31 days ago"] = _item(world, email_id, 31)
    email_id, newsletter_id = world.fail_midway(IVY, ago(100), "the images step failed")
    items["failed 91 days ago"] = _item(world, email_id, 91)
    with p.sessions.begin() as session:
        from inbox_pipeline.db.notifications import notify_once

        notify_once(
            session, user_id=world.users[IVY], kind="delivery_failed", dedup_key=f"newsletter-{newsletter_id}",
            subject="Could not deliver", body="The images step failed.",
        )

    first = world.arrive(JON, ago(40))
    assert compile_and_deliver_due(p, datetime(2026, 10, 16, 7, tzinfo=UTC)).sent == 1
    second = world.arrive(JON, ago(39))
    assert compile_and_deliver_due(p, datetime(2026, 10, 17, 7, tzinfo=UTC)).sent == 1
    held = world.arrive(JON, ago(38))  # after the last digest: still held
    items["in the digest of 31 days ago"] = _item(world, _email_id(world, first), 31)
    items["in the digest of 10 days ago"] = _item(world, _email_id(world, second), 10)
    items["held for a digest, 200 days"] = _item(world, _email_id(world, held), 200)
    with p.sessions.begin() as session:
        old_digest, young_digest = session.scalars(select(Digest).order_by(Digest.id)).all()
        old_digest.delivered_at, young_digest.delivered_at = ago(31), ago(10)
        digests = {"old": list(old_digest.epub_keys), "young": list(young_digest.epub_keys)}
    return items, digests


def test_cleanup_removes_what_is_past_retention_and_keeps_the_rest(world):
    p = world.pipeline
    items, digest_keys = build_history(world)
    for item in items.values():
        assert _raw_there(world, item.raw_key) and _row_there(world, item.email_id)
        assert item.epub_key is None or p.storage.exists(item.epub_key)
    failed_old = items["failed 91 days ago"]
    assert p.storage.exists(work_key(failed_old.newsletter_id, "images.zip"))

    report = clean_up(p, NOW, RetentionPolicy(days=30, failed_days=90))

    assert report.errors == []
    gone = {"delivered 31 days ago", "unroutable 31 days ago", "failed 91 days ago", "in the digest of 31 days ago"}
    for name, item in items.items():
        kept = name not in gone
        assert _row_there(world, item.email_id) is kept, name
        assert _raw_there(world, item.raw_key) is kept, name
        if item.epub_key:
            assert p.storage.exists(item.epub_key) is kept, name
    assert not p.storage.exists(work_key(failed_old.newsletter_id, "images.zip"))
    assert p.storage.exists(work_key(items["failed 31 days ago"].newsletter_id, "images.zip"))
    assert not any(p.storage.exists(k) for k in digest_keys["old"])
    assert all(p.storage.exists(k) for k in digest_keys["young"])

    with p.sessions() as session:
        # States are untouched for what stays: the failure is still there to inspect.
        states = {name: session.get(InboundEmail, items[name].email_id).state for name in set(items) - gone}
        assert states["failed 31 days ago"] == "failed"
        assert states["held for a digest, 200 days"] == "ready"
        # The duplicate keeps its row; its link to the removed original is cleared.
        assert session.get(InboundEmail, items["duplicate of the old one, 5 days ago"].email_id).duplicate_of_id is None
        # Ledger rows and id-keyed notifications of removed items went with them; the others stay.
        deliveries = session.execute(select(Delivery.item_kind, Delivery.item_id).order_by(Delivery.id)).all()
        young_digest = session.scalars(select(Digest.id)).one()
        assert deliveries == [("newsletter", items["delivered 29 days ago"].newsletter_id), ("digest", young_digest)]
        assert session.scalars(select(Notification.id).where(Notification.kind == "delivery_failed")).all() == []
        assert session.scalars(select(DigestMember.newsletter_id)).all() == [
            items["in the digest of 10 days ago"].newsletter_id
        ]
    assert (report.inbound_emails, report.newsletters, report.digests, report.raw_objects) == (4, 3, 1, 4)
    assert (report.deliveries, report.notifications) == (2, 1)

    # Again: nothing more to remove.
    assert clean_up(p, NOW, RetentionPolicy(days=30, failed_days=90)) == CleanupReport()

    # Shorter retention from the environment: the 29-day delivery and the 31-day failure go too.
    policy = policy_from_env(
        {"INBOX_PIPELINE_RETENTION_DAYS": "20", "INBOX_PIPELINE_FAILED_RETENTION_DAYS": "30"}
    )
    report = clean_up(p, NOW, policy)
    assert report.inbound_emails == 2
    for name in ("delivered 29 days ago", "failed 31 days ago"):
        assert not _row_there(world, items[name].email_id) and not _raw_there(world, items[name].raw_key)
    for name in ("duplicate of the old one, 5 days ago", "in the digest of 10 days ago", "held for a digest, 200 days"):
        assert _row_there(world, items[name].email_id) and _raw_there(world, items[name].raw_key)


def policy_from_env(environ: dict[str, str]) -> RetentionPolicy:
    from inbox_pipeline.config import Settings

    return RetentionPolicy.from_settings(Settings.from_env(environ))


def test_retention_settings_are_checked():
    assert policy_from_env({}) == RetentionPolicy(30, 90)
    assert policy_from_env({"INBOX_PIPELINE_RETENTION_DAYS": "7", "INBOX_PIPELINE_FAILED_RETENTION_DAYS": "14"}) == RetentionPolicy(7, 14)
    with pytest.raises(ValueError, match="FAILED_RETENTION_DAYS"):
        policy_from_env({"INBOX_PIPELINE_RETENTION_DAYS": "120"})
    with pytest.raises(ValueError, match="whole number"):
        policy_from_env({"INBOX_PIPELINE_RETENTION_DAYS": "a month"})
