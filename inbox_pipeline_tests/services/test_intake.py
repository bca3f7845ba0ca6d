"""Intake: where a tick's objects come from (announced on an SQS queue, or listed) and each taken once.

A real S3 API and SQS queue (moto server): the bucket's event notifications are
sent by the server, as S3 sends them to SQS; the app database is SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from inbox_pipeline.db.models import InboundEmail
from inbox_pipeline.services.context import Pipeline
from inbox_pipeline.services.intake import take_new_emails
from inbox_pipeline_tests.conftest import EventQueue, migrated
from inbox_pipeline_tests.helpers import CallMeter, ListingMeter, bytes_read, mime, sparse_file


def pipeline_for(database_url: str, inbox_uri: str, tmp_path: Path) -> Pipeline:
    migrated(database_url)
    return Pipeline(
        database_url=database_url,
        inbox_uri=inbox_uri,
        storage_uri=str(tmp_path / "storage"),
        mailer_uri=f"outbox:{tmp_path / 'outbox'}",
    )


@pytest.fixture
def announced(sqlite_url: str, s3_bucket: str, event_queue: EventQueue, tmp_path: Path) -> Iterator[Pipeline]:
    """A pipeline whose S3 inbox is announced on the queue."""
    event_queue.notify(s3_bucket)
    with pipeline_for(sqlite_url, f"s3://{s3_bucket}/incoming/?queue={event_queue.url}", tmp_path) as pipeline:
        yield pipeline


def registered_keys(pipeline: Pipeline) -> list[str]:
    with pipeline.sessions() as session:
        return sorted(session.scalars(select(InboundEmail.storage_key)))


def test_announced_emails_are_taken_without_listing_and_their_messages_deleted(
    announced: Pipeline, event_queue: EventQueue
) -> None:
    for key in ["m2", "m1"]:
        announced.inbox.put(key, mime(key))
    listings = ListingMeter(announced.inbox.client)

    tick = take_new_emails(announced, limit=10, reconcile=False)

    assert sorted(r.storage_key for r in tick.registered) == ["m1", "m2"]
    assert (tick.announced, tick.reconciled, tick.listed, tick.errors) == (2, False, 0, [])
    assert listings.calls == 0
    assert registered_keys(announced) == ["m1", "m2"]
    assert announced.inbox.list_pending(10) == []  # archived
    assert event_queue.messages() == 0  # every announcement settled (the s3:TestEvent dropped)


def test_an_email_without_a_notification_is_found_only_by_a_reconciling_tick(
    sqlite_url: str, s3_bucket: str, event_queue: EventQueue, tmp_path: Path
) -> None:
    pipeline = pipeline_for(sqlite_url, f"s3://{s3_bucket}/incoming/?queue={event_queue.name}", tmp_path)
    pipeline.inbox.put("before-the-queue", mime(1))  # arrived before the notification was configured
    event_queue.notify(s3_bucket)
    pipeline.inbox.put("announced", mime(2))

    normal = take_new_emails(pipeline, limit=10, reconcile=False)

    assert [r.storage_key for r in normal.registered] == ["announced"]
    assert registered_keys(pipeline) == ["announced"]

    reconciling = take_new_emails(pipeline, limit=10, reconcile=True)

    assert [r.storage_key for r in reconciling.registered] == ["before-the-queue"]
    assert (reconciling.reconciled, reconciling.listed, reconciling.unannounced) == (True, 1, 1)
    assert registered_keys(pipeline) == ["announced", "before-the-queue"]
    assert event_queue.messages() == 0
    pipeline.close()


def test_a_reconciling_tick_takes_each_email_once_whether_announced_or_listed(
    announced: Pipeline, event_queue: EventQueue
) -> None:
    announced.inbox.put("both", mime(1))
    announced.inbox.put("both", mime(1))  # written twice: two announcements, one object

    tick = take_new_emails(announced, limit=10, reconcile=True)

    assert [r.storage_key for r in tick.registered] == ["both"]
    assert (tick.announced, tick.listed, tick.unannounced) == (1, 1, 0)
    assert event_queue.messages() == 0


def test_an_announcement_for_an_email_already_archived_is_dropped(
    announced: Pipeline, event_queue: EventQueue, s3_bucket: str, sqlite_url: str, tmp_path: Path
) -> None:
    announced.inbox.put("early", mime(1))
    # A listing tick (no queue) takes it before its announcement is read.
    listing = pipeline_for(sqlite_url, f"s3://{s3_bucket}/incoming/", tmp_path)
    assert [r.storage_key for r in take_new_emails(listing, limit=10).registered] == ["early"]

    tick = take_new_emails(announced, limit=10, reconcile=False)

    assert (tick.announced, tick.registered, tick.errors) == (1, [], [])
    assert registered_keys(announced) == ["early"]
    assert event_queue.messages() == 0, "the stale announcement is deleted, it does not come back"


def test_announcements_of_emails_taken_by_runs_still_running_are_settled_not_kept(
    announced: Pipeline, event_queue: EventQueue, sqlite_url: str, tmp_path: Path
) -> None:
    """A burst: the first tick's emails are in runs that have archived them but not finished. Their
    announcements are deleted at once, so they cannot crowd a later email out of the next ticks."""
    from inbox_pipeline.services.intake import find_pending, take_pending

    for n in range(4):
        announced.inbox.put(f"early-{n}", mime(n))
    first = find_pending(announced, limit=4, reconcile=False)
    assert [o.key for o in first.new] == [f"early-{n}" for n in range(4)]
    with pipeline_for(sqlite_url, announced.inbox.uri, tmp_path) as run:
        take_pending(run, first.new)  # the runs' first op, in their own processes: registered and archived
    busy = {o.key for o in first.new}  # ... and the runs are still running
    announced.inbox.put("late", mime(9))

    # Past the queue's visibility timeout (moto's server runs in this process: it travels too), the
    # first tick's announcements come back; a burst's later emails are behind them in the queue.
    with event_queue.past_visibility_timeout():
        later = find_pending(announced, limit=10, reconcile=False, busy=busy)  # fewer waiting: not a burst

    assert [o.key for o in later.new] == ["late"]
    assert (later.settled, later.busy, later.burst) == (4, 0, False)
    assert event_queue.messages() == 1, "only the late email's announcement is left, until it is taken"


def test_a_burst_is_listed_not_read_from_the_queue_and_its_announcements_are_settled_after(
    announced: Pipeline, event_queue: EventQueue, sqlite_url: str, tmp_path: Path
) -> None:
    """A tick's worth of announcements or more waiting: the tick lists the prefix (one call for 1,000
    names) and takes a listing's page, not the tick's limit, leaving the queue alone; once the burst
    is taken, ticks settle the announcements, at most a tick's worth each."""
    from inbox_pipeline.services.intake import find_pending, take_pending

    waiting = event_queue.messages()  # S3's test event, sent when the notification was set up
    for n in range(7):
        announced.inbox.put(f"burst-{n}", mime(n))
    first = find_pending(announced, limit=3, reconcile=False)
    assert (first.burst, first.backlog, first.announced) == (True, waiting + 7, 0)
    assert [o.key for o in first.new] == [f"burst-{n}" for n in range(7)]
    assert event_queue.messages() == waiting + 7 and first.unannounced == 0  # not read: nothing in flight

    with pipeline_for(sqlite_url, announced.inbox.uri, tmp_path) as run:
        take_pending(run, first.new)  # the take run: registered and archived
    settled, ticks = [], 0
    while event_queue.messages() and ticks < 6:  # a tick's worth of announcements read each tick, no more
        tick = find_pending(announced, limit=3, reconcile=False)
        assert tick.new == [] and tick.settled <= 3
        settled.append(tick.settled)
        ticks += 1
    assert event_queue.messages() == 0 and sum(settled) == 7 and ticks >= 3


def test_without_an_announcement_source_every_tick_lists(sqlite_url: str, tmp_path: Path) -> None:
    pipeline = pipeline_for(sqlite_url, str(tmp_path / "inbox"), tmp_path)
    pipeline.inbox.put("m1", mime(1))

    tick = take_new_emails(pipeline, limit=10, reconcile=False)

    assert [r.storage_key for r in tick.registered] == ["m1"]
    assert (tick.announced, tick.reconciled, tick.listed) == (None, True, 1)
    pipeline.close()


def test_a_3_gb_email_is_registered_unread_and_fails_as_too_large_while_the_others_go_on(
    sqlite_url: str, tmp_path: Path
) -> None:
    from inbox_pipeline.services.context import PermanentStepError
    from inbox_pipeline.services.process import parse_inbound

    pipeline = pipeline_for(sqlite_url, str(tmp_path / "inbox"), tmp_path)
    pipeline.inbox.put("a-small", mime(1))
    sparse_file(tmp_path / "inbox" / "b-huge", 3 * 1024**3)

    before = bytes_read()
    tick = take_new_emails(pipeline, limit=10, reconcile=False)
    assert bytes_read() - before < 10 * 1024 * 1024

    registered = {r.storage_key: r for r in tick.registered}
    assert sorted(registered) == ["a-small", "b-huge"] and tick.errors == []
    assert registered["b-huge"].size == 3 * 1024**3
    assert pipeline.inbox.list_pending(10) == []  # both archived: nothing is retried every tick

    with pytest.raises(PermanentStepError):
        parse_inbound(pipeline, registered["b-huge"].email_id)
    assert parse_inbound(pipeline, registered["a-small"].email_id).size == len(mime(1))
    with pipeline.sessions() as session:
        row = session.scalars(select(InboundEmail).where(InboundEmail.storage_key == "b-huge")).one()
        assert row.state == "failed"
        assert row.reason == (
            "not a readable email: archived email 'b-huge' too large: 3,221,225,472 bytes (limit 52,428,800)"
        )
    pipeline.close()


# --- S3 calls per email: the bytes read to take it are the bytes parsed --------------------------


def test_an_announced_email_taken_and_parsed_costs_one_get_and_two_heads(announced: Pipeline) -> None:
    from inbox_pipeline.services.process import parse_inbound

    announced.inbox.put("m1", mime(1))
    meter = CallMeter(announced.inbox.client)

    (taken,) = take_new_emails(announced, limit=10, reconcile=False).registered
    parsed = parse_inbound(announced, taken.email_id)

    assert parsed.size == len(mime(1)) and parsed.subject
    # HEAD: still pending? (the tick's) and is the archive's name taken?; the GET that hashed it is
    # the one parsed, and the move uses that GET's ETag.
    assert meter.calls == {"HeadObject": 2, "GetObject": 1, "CopyObject": 1, "DeleteObject": 1}


def test_large_emails_are_read_again_from_the_archive_and_what_a_run_keeps_is_bounded(
    sqlite_url: str, s3_bucket: str, tmp_path: Path
) -> None:
    from inbox_pipeline.services.context import RAW_KEPT_EACH, RAW_KEPT_TOTAL
    from inbox_pipeline.services.process import parse_inbound

    pipeline = pipeline_for(sqlite_url, f"s3://{s3_bucket}/incoming/", tmp_path)
    large = mime(1) + b"more of the body\r\n" * (RAW_KEPT_EACH // 18 + 1)  # just over what a run keeps
    pipeline.inbox.put("large", large)
    pipeline.inbox.put("small", mime(2))
    meter = CallMeter(pipeline.inbox.client)

    taken = {r.storage_key: r for r in take_new_emails(pipeline, limit=10).registered}
    assert meter.calls["GetObject"] == 2
    assert parse_inbound(pipeline, taken["large"].email_id).size == len(large)
    assert parse_inbound(pipeline, taken["small"].email_id).size == len(mime(2))
    assert meter.calls["GetObject"] == 3  # the large one's archived copy only

    # A batch of 100 emails just under the limit each: the oldest are dropped, the rest fit the budget.
    for n in range(100):
        pipeline.keep_raw(f"e{n}", bytes(RAW_KEPT_EACH))
    assert sum(map(len, pipeline.raw.values())) <= RAW_KEPT_TOTAL
    assert pipeline.take_raw("e0") is None and pipeline.take_raw("e99") == bytes(RAW_KEPT_EACH)
    assert pipeline.take_raw("e99") is None  # given once: parsing keeps what it parsed
    pipeline.close()
    assert not pipeline.raw


# --- poison objects: names nobody should have chosen never hold the inbox up -----------------

LONG = "n" * 240 + ".eml"  # fits a file name (255 bytes) but not with "-dup1" added


def _drop(pipeline: Pipeline, name: str | bytes, data: bytes) -> None:
    """Write a pending object as a mail server or a person would, with whatever name they chose."""
    inbox = pipeline.inbox
    if hasattr(inbox, "client"):
        inbox.client.put_object(Bucket=inbox.bucket, Key=inbox.prefix + name, Body=data)
    else:
        inbox.path.mkdir(parents=True, exist_ok=True)
        path = (bytes(inbox.path) + b"/" + name) if isinstance(name, bytes) else inbox.path / name
        with open(path, "wb") as fh:
            fh.write(data)


@pytest.fixture(params=["folder", "s3", "s3+queue"])
def any_inbox(request, sqlite_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    if request.param == "folder":
        uri = str(tmp_path / "inbox")
    else:
        bucket = request.getfixturevalue("s3_bucket")
        uri = f"s3://{bucket}/incoming/"
        if request.param == "s3+queue":
            queue = request.getfixturevalue("event_queue")
            queue.notify(bucket)
            uri += f"?queue={queue.url}"
    with pipeline_for(sqlite_url, uri, tmp_path) as pipeline:
        yield pipeline


def test_poison_names_are_registered_under_plain_names_and_the_rest_goes_on(any_inbox: Pipeline) -> None:
    inbox = any_inbox.inbox
    drops: dict[str | bytes, bytes] = {"back\\slash.eml": mime("backslash"), LONG: mime("long"), "good": mime("good")}
    if not hasattr(inbox, "client"):
        drops[b"caf\xe9-latin1.eml"] = mime("latin-1 name")  # a file name that is not UTF-8
        drops["tab\there.eml"] = mime("tab")
    for name, data in drops.items():
        _drop(any_inbox, name, data)

    tick = take_new_emails(any_inbox, limit=10, reconcile=True)

    assert tick.errors == [] and len(tick.registered) == len(drops)
    assert inbox.list_pending(10) == []
    keys = registered_keys(any_inbox)
    assert "good" in keys and LONG not in keys
    for key in keys:  # every registered name is plain, short and archived with its bytes
        assert "\\" not in key and key.isprintable() and len(key.encode()) <= 200
        assert inbox.read_archived(key) in drops.values()
    assert sorted(inbox.read_archived(k) for k in keys) == sorted(drops.values())

    # The same long name again, other bytes: archived beside the first ("-dup1"), not lost.
    _drop(any_inbox, LONG, mime("long, second issue"))
    again = take_new_emails(any_inbox, limit=10, reconcile=True)
    (second,) = again.registered
    assert again.errors == [] and second.storage_key.endswith("-dup1.eml")
    assert inbox.read_archived(second.storage_key) == mime("long, second issue")
