"""The inbox seam against a real folder and a real S3 API (moto server)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from inbox_pipeline.seams import FolderInbox, Inbox, ObjectNotFound, ObjectTooLarge, S3Inbox, inbox_from_uri
from inbox_pipeline.seams._aws import error_code
from inbox_pipeline.seams._common import MAX_EMAIL_BYTES
from inbox_pipeline_tests.conftest import EventQueue
from inbox_pipeline_tests.helpers import CallMeter, ListingMeter, bytes_read, mime, sparse_file


def ses_like_key() -> str:
    """SES names objects after random-looking message ids: not in arrival order."""
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


@pytest.fixture
def inbox(place) -> Inbox:
    return inbox_from_uri(place("incoming/"))


def drain(inbox: Inbox, limit: int = 100) -> list[str]:
    """What a sensor does: list pending, archive each, until nothing is pending."""
    seen: list[str] = []
    while batch := inbox.list_pending(limit):
        for obj in batch:
            seen.append(obj.key)
            inbox.archive(obj.key)
    return seen


def test_put_list_read_archive(inbox: Inbox) -> None:
    inbox.put("b-second", mime(2))
    inbox.put("a-first", mime(1))

    pending = inbox.list_pending(10)

    assert [o.key for o in pending] == ["a-first", "b-second"]
    assert pending[0].size == len(mime(1))
    assert pending[0].last_modified.tzinfo is not None and pending[0].version
    assert inbox.read("a-first") == mime(1)

    archived = inbox.archive("a-first")

    assert archived == "a-first"
    assert [o.key for o in inbox.list_pending(10)] == ["b-second"]
    assert inbox.read_archived(archived) == mime(1)
    assert inbox.archived_uri(archived).endswith("a-first")
    with pytest.raises(ObjectNotFound):
        inbox.read("a-first")

    inbox.delete_archived(archived)
    inbox.delete_archived(archived)  # cleanup may run twice
    with pytest.raises(ObjectNotFound):
        inbox.read_archived(archived)


def test_limit_and_after_page_through_pending(inbox: Inbox) -> None:
    for key in ["k3", "k1", "k5", "k2", "k4"]:
        inbox.put(key, mime(key))

    assert [o.key for o in inbox.list_pending(2)] == ["k1", "k2"]
    assert [o.key for o in inbox.list_pending(2, after="k2")] == ["k3", "k4"]
    assert [o.key for o in inbox.list_pending(10, after="k4")] == ["k5"]
    with pytest.raises(ValueError):
        inbox.list_pending(0)


def test_email_sorting_before_processed_ones_is_not_missed(inbox: Inbox) -> None:
    # The trap of a StartAfter cursor: a later email whose key sorts first.
    inbox.put("m-arrived-first", mime(1))
    assert drain(inbox) == ["m-arrived-first"]

    inbox.put("a-arrived-later", mime(2))

    assert drain(inbox) == ["a-arrived-later"]


def test_burst_of_emails_each_listed_exactly_once(inbox: Inbox) -> None:
    """Thousands landing in the same moment, while the sensor ticks, none missed or repeated."""
    total = 3000 if isinstance(inbox, FolderInbox) else 1200  # the S3 API server is slower
    keys = [ses_like_key() for _ in range(total)]
    listed: list[str] = []
    writing_done = threading.Event()

    def writer() -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: inbox.put(k, mime(k)), keys))
        writing_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while not writing_done.is_set():
            listed += drain(inbox, limit=150)  # ticks racing the writers
        listed += drain(inbox, limit=150)  # the tick after the burst
    finally:
        thread.join()

    assert len(listed) == total, "every email listed once: none missed, none twice"
    assert set(listed) == set(keys)
    assert inbox.list_pending(10) == []
    sample = keys[:: total // 20]
    assert all(inbox.read_archived(k) == mime(k) for k in sample)


def test_archive_is_idempotent(inbox: Inbox) -> None:
    inbox.put("msg-1", mime(1))
    first = inbox.archive("msg-1")

    # The sensor died before recording the archived key: archiving again is harmless.
    assert inbox.archive("msg-1") == first

    # The move was interrupted after the copy (S3 copy+delete): the same bytes are
    # pending and archived; the second archive just finishes the move.
    inbox.put("msg-1", mime(1))
    assert inbox.archive("msg-1") == first
    assert inbox.list_pending(10) == []
    assert inbox.read_archived(first) == mime(1)

    with pytest.raises(ObjectNotFound):
        inbox.archive("never-arrived")


def test_reused_name_never_overwrites_an_archived_email(inbox: Inbox) -> None:
    inbox.put("newsletter.eml", mime("old"))
    old = inbox.archive("newsletter.eml")
    inbox.put("newsletter.eml", mime("new"))

    new = inbox.archive("newsletter.eml")

    assert new != old
    assert new == "newsletter-dup1.eml"
    assert inbox.read_archived(old) == mime("old")
    assert inbox.read_archived(new) == mime("new")


def test_keys_that_could_escape_are_refused(inbox: Inbox) -> None:
    for bad in ["../x", "a/b", "/abs", "", "."]:
        with pytest.raises(ValueError):
            inbox.put(bad, b"x")


# --- S3 specifics -----------------------------------------------------------------


def test_s3_listing_cost_does_not_grow_with_processed_emails(s3_bucket: str) -> None:
    # The bucket root is the hard case: the archive then lies *inside* the listed prefix.
    inbox = S3Inbox(s3_bucket, "")
    for key in [ses_like_key() for _ in range(20)]:
        inbox.put(key, mime(key))
        inbox.archive(key)
    # History beyond one 1000-key page, written straight into the archive (faster than moving).
    history = [ses_like_key() for _ in range(1000)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: inbox.client.put_object(Bucket=s3_bucket, Key=inbox.archive_prefix + k, Body=b"x"), history))
    fresh = sorted(ses_like_key() for _ in range(3))
    for key in fresh:
        inbox.put(key, mime(key))
    meter = ListingMeter(inbox.client)

    pending = inbox.list_pending(200)

    assert [o.key for o in pending] == fresh
    assert meter.calls == 1
    # The 3 new objects, plus at most the archive folder seen as one common prefix.
    assert meter.keys <= 4


def test_s3_inbox_takes_its_endpoint_from_boto3_environment(aws_env: str, s3_bucket: str) -> None:
    inbox = inbox_from_uri(f"s3://{s3_bucket}/in")

    assert isinstance(inbox, S3Inbox)
    assert inbox.client.meta.endpoint_url == aws_env
    assert inbox.uri == f"s3://{s3_bucket}/in/"
    assert inbox.archive_uri == f"s3://{s3_bucket}/in-archive/"


def test_s3_ignores_nested_objects_and_the_ses_setup_notification(s3_bucket: str) -> None:
    import boto3

    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="incoming/AMAZON_SES_SETUP_NOTIFICATION", Body=b"setup")
    client.put_object(Bucket=s3_bucket, Key="incoming/", Body=b"")  # a console "folder"
    client.put_object(Bucket=s3_bucket, Key="incoming/sub/deep", Body=b"x")
    client.put_object(Bucket=s3_bucket, Key="incoming/real-email", Body=mime(1))

    inbox = S3Inbox(s3_bucket, "incoming")

    assert [o.key for o in inbox.list_pending(10)] == ["real-email"]


def test_s3_custom_archive_prefix(s3_bucket: str) -> None:
    import boto3

    inbox = inbox_from_uri(f"s3://{s3_bucket}/incoming/?archive=processed/raw/")
    inbox.put("m1", mime(1))

    inbox.archive("m1")

    body = boto3.client("s3").get_object(Bucket=s3_bucket, Key="processed/raw/m1")["Body"].read()
    assert body == mime(1)


# --- S3: archiving the object just read, without looking it up again --------------------


def test_s3_archiving_what_was_just_read_looks_up_only_the_archive(s3_bucket: str) -> None:
    inbox = S3Inbox(s3_bucket, "incoming")
    inbox.client.put_object(
        Bucket=s3_bucket, Key="incoming/m1", Body=mime(1), ContentType="message/rfc822", Metadata={"by": "ses"}
    )
    meter = CallMeter(inbox.client)

    data, head = inbox.read_to_archive("m1")
    archived = inbox.archive("m1", head=head)

    assert (data, archived) == (mime(1), "m1")
    # One GET; the one HEAD is the archive's (is the name taken?), none for the object just read.
    assert meter.calls == {"GetObject": 1, "HeadObject": 1, "CopyObject": 1, "DeleteObject": 1}
    assert inbox.list_pending(10) == [] and inbox.read_archived("m1") == mime(1)
    copy = inbox.client.head_object(Bucket=s3_bucket, Key="incoming-archive/m1")
    assert copy["ContentType"] == "message/rfc822" and copy["Metadata"]["by"] == "ses"


def test_s3_the_move_of_what_was_read_is_guarded_by_the_etag_read(s3_bucket: str) -> None:
    inbox = S3Inbox(s3_bucket, "incoming")
    first = inbox.client.put_object(Bucket=s3_bucket, Key="incoming/m1", Body=mime("first"))["ETag"]
    _, head = inbox.read_to_archive("m1")
    inbox.put("m1", mime("second"))  # the same name written again before the move
    conditions: list[str] = []
    inbox.client.meta.events.register(
        "before-parameter-build.s3.CopyObject", lambda params, **_: conditions.append(params["CopySourceIfMatch"])
    )

    try:
        inbox.archive("m1", head=head)
    except ClientError as exc:  # what S3 answers; moto (5.2) ignores the condition, so the request is checked
        assert error_code(exc) == "PreconditionFailed"

    assert conditions == [first]  # copied only if still the object read, never the second unseen


def test_s3_a_newer_object_of_an_archived_name_stays_pending_when_the_head_read_is_old(s3_bucket: str) -> None:
    inbox = S3Inbox(s3_bucket, "incoming")
    inbox.put("m1", mime("first"))
    _, head = inbox.read_to_archive("m1")
    assert inbox.archive("m1") == "m1"  # moved meanwhile (a retry that was not recorded)
    inbox.put("m1", mime("second"))

    assert inbox.archive("m1", head=head) == "m1"  # the email read is archived there

    assert inbox.read("m1") == mime("second")  # not deleted: it was never archived
    assert inbox.read_archived("m1") == mime("first")


def test_s3_an_object_moved_after_it_was_read_is_found_in_the_archive(s3_bucket: str) -> None:
    inbox = S3Inbox(s3_bucket, "incoming")
    inbox.put("m1", mime(1))
    _, head = inbox.read_to_archive("m1")
    inbox.archive("m1")

    assert inbox.archive("m1", head=head) == "m1"
    assert inbox.list_pending(10) == [] and inbox.read_archived("m1") == mime(1)


# --- S3 announcements: event notifications on an SQS queue ----------------------------


@pytest.fixture
def announced(s3_bucket: str, event_queue: EventQueue) -> S3Inbox:
    """An inbox whose bucket announces new objects under incoming/ on the queue (by its URL)."""
    event_queue.notify(s3_bucket)
    inbox = inbox_from_uri(f"s3://{s3_bucket}/incoming/?queue={event_queue.url}")
    assert isinstance(inbox, S3Inbox) and inbox.announces
    return inbox


def test_s3_announced_objects_are_taken_and_their_messages_deleted_once_archived(
    announced: S3Inbox, event_queue: EventQueue
) -> None:
    keys = ["b-second", "a first+plus.eml"]  # event keys are URL-encoded: "+" for a space
    for key in keys:
        announced.put(key, mime(key))
    meter = ListingMeter(announced.client)

    taken = announced.take_announced(10)

    assert [o.key for o in taken] == sorted(keys)
    assert taken[0].size == len(mime(keys[1])) and taken[0].last_modified.tzinfo is not None
    assert taken[0].version == announced.client.head_object(
        Bucket=announced.bucket, Key="incoming/a first+plus.eml"
    )["ETag"].strip('"')
    assert meter.calls == 0, "announced objects need no listing"
    assert announced.read(taken[0].key) == mime(keys[1])
    assert event_queue.messages() == 2  # the s3:TestEvent is gone; both announcements wait for their archive

    for obj in taken:
        announced.archive(obj.key)

    assert event_queue.messages() == 0
    with event_queue.past_visibility_timeout():
        assert announced.take_announced(10) == []


def test_s3_an_announcement_stays_queued_until_its_object_is_archived(
    announced: S3Inbox, event_queue: EventQueue
) -> None:
    announced.put("kept", mime(1))
    announced.put("done", mime(2))
    assert [o.key for o in announced.take_announced(10)] == ["done", "kept"]
    announced.archive("done")  # the tick died before archiving "kept"

    assert announced.take_announced(10) == []  # still in flight
    with event_queue.past_visibility_timeout():
        assert [o.key for o in announced.take_announced(10)] == ["kept"]  # SQS delivered it again
        announced.archive("kept")
        assert event_queue.messages() == 0


def test_s3_test_event_and_archive_events_are_dropped(
    s3_bucket: str, event_queue: EventQueue, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    event_queue.notify(s3_bucket, prefix=None)  # the whole bucket: the archive's copies are announced too
    inbox = inbox_from_uri(f"s3://{s3_bucket}/incoming/?queue={event_queue.name}")  # a bare name
    inbox.put("m1", mime(1))
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="incoming/sub/deep", Body=b"x")
    client.put_object(Bucket=s3_bucket, Key="incoming/AMAZON_SES_SETUP_NOTIFICATION", Body=b"setup")
    client.put_object(Bucket=s3_bucket, Key="elsewhere/x", Body=b"x")

    with caplog.at_level(logging.WARNING, logger="inbox_pipeline.seams.inbox"):
        assert [o.key for o in inbox.take_announced(10)] == ["m1"]
        inbox.archive("m1")  # S3 announces the copy into incoming-archive/
        assert inbox.take_announced(10) == []

    assert event_queue.messages() == 0
    dropped = [r.getMessage() for r in caplog.records if "dropping an SQS message" in r.getMessage()]
    assert len(dropped) == 5  # the test event, sub/deep, the SES setup object, elsewhere/x, the archive copy
    assert any("s3:TestEvent" in m for m in dropped)
    assert any(f"ObjectCreated:Copy s3://{s3_bucket}/incoming-archive/m1" in m for m in dropped)


def test_s3_a_garbage_message_is_dropped_and_does_not_block_a_real_one(
    announced: S3Inbox, event_queue: EventQueue, caplog: pytest.LogCaptureFixture
) -> None:
    assert announced.take_announced(10) == []  # consumes the s3:TestEvent
    event_queue.send("this is not an S3 event")
    event_queue.send(json.dumps({"Records": "not a list"}))
    announced.put("real", mime(1))

    with caplog.at_level(logging.WARNING, logger="inbox_pipeline.seams.inbox"):
        taken = announced.take_announced(1)

    assert [o.key for o in taken] == ["real"]
    assert any("not JSON" in r.getMessage() for r in caplog.records)
    announced.archive("real")
    assert event_queue.messages() == 0


def test_s3_announcements_through_sns_and_repeated_ones_are_taken_once(
    announced: S3Inbox, event_queue: EventQueue
) -> None:
    announced.put("twice", mime(1))
    announced.put("twice", mime(1))  # the same name written again: two events, one object
    record = {
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-03-02T08:00:00.000Z",
        "s3": {"bucket": {"name": announced.bucket}, "object": {"key": "incoming/via-sns", "size": 3, "eTag": "e"}},
    }
    announced.put("via-sns", b"abc")  # announced directly too
    event_queue.send(json.dumps({"Type": "Notification", "Message": json.dumps({"Records": [record]})}))

    taken = announced.take_announced(10)

    assert [o.key for o in taken] == ["twice", "via-sns"]
    for obj in taken:
        announced.archive(obj.key)
    assert event_queue.messages() == 0, "every message naming an archived object is deleted"


def test_s3_an_announcement_for_an_object_no_longer_pending_is_forgotten(
    announced: S3Inbox, event_queue: EventQueue
) -> None:
    announced.put("gone", mime(1))
    S3Inbox(announced.bucket, "incoming").archive("gone")  # a listing tick took it before its message came

    (obj,) = announced.take_announced(10)  # the announcement still arrives
    with pytest.raises(ObjectNotFound):
        announced.read(obj.key)
    announced.forget(obj.key)

    assert event_queue.messages() == 0


def test_inboxes_without_a_queue_have_no_announcements(tmp_path: Path, s3_bucket: str) -> None:
    for inbox in [FolderInbox(tmp_path), inbox_from_uri(f"s3://{s3_bucket}/incoming/")]:
        assert not inbox.announces
        assert inbox.take_announced(10) is None
        inbox.forget("anything")  # nothing to settle


def test_a_queue_name_is_resolved_on_first_use_and_a_missing_one_says_so(
    monkeypatch: pytest.MonkeyPatch, event_queue: EventQueue
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: defining needs no AWS
    inbox = inbox_from_uri("s3://bucket/incoming/?queue=no-such-queue")
    assert isinstance(inbox, S3Inbox) and inbox.queue == "no-such-queue"

    monkeypatch.setenv("AWS_ENDPOINT_URL", event_queue.sqs.meta.endpoint_url)
    with pytest.raises(ValueError, match="no SQS queue 'no-such-queue' in region us-east-1"):
        inbox_from_uri("s3://bucket/incoming/?queue=no-such-queue").take_announced(10)
    assert inbox_from_uri(f"s3://bucket/incoming/?queue={event_queue.name}").queue_url == event_queue.url


# --- folder specifics ----------------------------------------------------------------


def test_folder_ignores_files_still_being_written(tmp_path: Path) -> None:
    inbox = FolderInbox(tmp_path)
    (tmp_path / "mail-1.eml.tmp").write_bytes(mime(1)[:10])  # a writer at work
    (tmp_path / ".mail-2.eml").write_bytes(b"hidden")
    (tmp_path / "mail-3.eml.part").write_bytes(b"partial")
    (tmp_path / "mail-4.eml~").write_bytes(b"editor backup")
    (tmp_path / "tmp").mkdir()  # Maildir-style sub-folder
    (tmp_path / "tmp" / "mail-5").write_bytes(b"nested")

    assert inbox.list_pending(10) == []

    (tmp_path / "mail-1.eml.tmp").write_bytes(mime(1))
    os.replace(tmp_path / "mail-1.eml.tmp", tmp_path / "mail-1.eml")  # the writer finishes

    assert [o.key for o in inbox.list_pending(10)] == ["mail-1.eml"]


def test_folder_put_is_atomic_and_archive_is_hidden(tmp_path: Path) -> None:
    inbox = FolderInbox(tmp_path / "in")
    inbox.put("x.eml", mime(1))

    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["x.eml"]  # no temp left over
    inbox.archive("x.eml")
    assert (tmp_path / "in" / ".archive" / "x.eml").read_bytes() == mime(1)
    assert inbox.list_pending(10) == []


def test_folder_missing_inbox_lists_nothing(tmp_path: Path) -> None:
    assert FolderInbox(tmp_path / "not-yet").list_pending(5) == []


def test_folder_listing_cost_does_not_grow_with_processed_emails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = FolderInbox(tmp_path)
    for i in range(1500):
        inbox.put(f"old-{i:05}", mime(i))
    drain(inbox, limit=500)
    inbox.put("new-1", mime("n"))
    seen_entries = 0
    real_scandir = os.scandir

    class CountingScandir:
        def __init__(self, path):
            self.inner = real_scandir(path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.inner.close()

        def __iter__(self):
            nonlocal seen_entries
            for entry in self.inner:
                seen_entries += 1
                yield entry

    monkeypatch.setattr(os, "scandir", CountingScandir)

    assert [o.key for o in inbox.list_pending(100)] == ["new-1"]
    assert seen_entries == 2  # new-1 and the .archive folder, not 1500 archived files


def test_folder_same_second_mtimes_do_not_matter(tmp_path: Path) -> None:
    inbox = FolderInbox(tmp_path)
    keys = [ses_like_key() for _ in range(300)]
    now = time.time()
    for key in keys:
        inbox.put(key, mime(key))
        os.utime(tmp_path / key, (now, now))  # all in one and the same second

    assert sorted(drain(inbox, limit=64)) == sorted(keys)


# --- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("s3://", "no bucket"),
        ("s3:///prefix/", "no bucket"),
        ("ftp://host/in", "unsupported scheme"),
        ("s3://b/in/?archiv=x/", "unknown option"),
        ("s3://b/in/?archive=in/", "must differ"),
        ("file://otherhost/x", "local path"),
        ("s3://b/in/?queue=", "queue is empty"),
        ("s3://b/in/?queue=arn:aws:sqs:eu-west-1:123456789012:events", "is an ARN"),
        ("s3://b/in/?queue=inbox events!", "neither an SQS queue URL nor a queue name"),
        ("s3://b/in/?queue=" + "q" * 81, "neither an SQS queue URL nor a queue name"),
        ("s3://b/in/?queue=https://sqs.eu-west-1.amazonaws.com/events", "not an SQS queue URL"),
    ],
)
def test_bad_inbox_uris_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        inbox_from_uri(uri)


def test_inbox_uri_forms(tmp_path: Path) -> None:
    assert isinstance(inbox_from_uri(str(tmp_path)), FolderInbox)
    assert inbox_from_uri(tmp_path.as_uri()).uri == str(tmp_path)
    root = inbox_from_uri("s3://bucket")
    assert isinstance(root, S3Inbox) and root.prefix == "" and root.archive_prefix == "archive/"
    nested = inbox_from_uri("s3://bucket/mail/in/")
    assert nested.archive_uri == "s3://bucket/mail/in-archive/"


def test_inbox_uri_with_a_queue() -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/inbox-events"
    by_url = inbox_from_uri(f"s3://bucket/incoming/?archive=done/&queue={url}")
    assert isinstance(by_url, S3Inbox)
    assert (by_url.queue, by_url.archive_prefix, by_url.announces) == (url, "done/", True)
    assert by_url.queue_url == url  # a URL needs no lookup
    by_name = inbox_from_uri("s3://bucket/incoming/?queue=inbox-events")
    assert isinstance(by_name, S3Inbox) and by_name.queue == "inbox-events" and by_name.uri == "s3://bucket/incoming/"
    assert not inbox_from_uri("s3://bucket/incoming/").announces


# --- sizes: "too large" from the object's size, before it is read -------------------


def test_an_email_over_the_limit_is_refused_from_its_size_before_it_is_read(inbox: Inbox) -> None:
    inbox.put("big", b"x" * 200_000)
    inbox.put("small", mime(1))

    with pytest.raises(ObjectTooLarge) as refused:
        inbox.read("big", max_bytes=100_000)
    # The whole size is reported: it came from the stat / ContentLength, as a read stops at the limit + 1.
    assert refused.value.size == 200_000 and refused.value.limit == 100_000
    assert "too large: 200,000 bytes (limit 100,000)" in str(refused.value)
    assert inbox.read("small", max_bytes=100_000) == mime(1)

    archived = inbox.archive("big")
    with pytest.raises(ObjectTooLarge):
        inbox.read_archived(archived, max_bytes=100_000)
    assert inbox.read_archived(archived) == b"x" * 200_000  # within the default limit


def test_a_3_gb_file_in_the_folder_inbox_is_refused_without_reading_it(tmp_path: Path) -> None:
    inbox = FolderInbox(tmp_path)
    sparse_file(tmp_path / "huge.eml", 3 * 1024**3)

    before = bytes_read()
    with pytest.raises(ObjectTooLarge) as refused:
        inbox.read("huge.eml")
    assert bytes_read() - before < 1024 * 1024
    assert refused.value.size == 3 * 1024**3 and refused.value.limit == MAX_EMAIL_BYTES


def test_the_inbox_limit_is_the_parser_s_limit() -> None:
    from inbox_pipeline.core.parse import MAX_BYTES

    assert MAX_EMAIL_BYTES == MAX_BYTES

