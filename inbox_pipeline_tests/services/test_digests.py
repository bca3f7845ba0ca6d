"""Digests with a moving clock: three users, three zones, daily and weekly, two DST changes.

The clock moves hour by hour (the schedule's ticks) from Friday 23 October to
Monday 2 November 2026: Berlin leaves summer time on 25 October (02:00 happens
twice), New York on 1 November (01:00 happens twice). Newsletters arrive all
along, go through the real per-email steps and are held. The test then reads
what arrived at the SMTP server: one email per due digest with something new,
each EPUB holding exactly the newsletters not sent before, oldest first.
"""

from __future__ import annotations

import re

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from inbox_pipeline.core.epub import format_date
from inbox_pipeline.db.models import Delivery, Digest, DigestMember, InboundEmail, Newsletter
from inbox_pipeline.services.digests import compile_and_deliver_due, due_work, epub_budget
from inbox_pipeline_tests.helpers import noise_jpeg, normalise
from inbox_pipeline_tests.services.digest_world import World, received_digests

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


START, END = at("2026-10-23 00:00"), at("2026-11-02 12:00")
USERS = {
    # email: (zone, delivery, kindle)
    "alice@readers.example": ("Europe/Berlin", "daily@02", "alice@kindle.example"),
    "bob@readers.example": ("America/New_York", "weekly@sun@01", "bob@kindle.example"),
    "chen@readers.example": ("Asia/Kolkata", "daily@23", "chen@kindle.example"),
}
# When each digest falls due, in UTC, worked out by hand from the zone rules.
DUE = {
    # 02:00 Berlin: CEST (UTC+2) until 25 Oct; on the 25th 02:00 happens twice and the first counts;
    # CET (UTC+1) after.
    "alice@readers.example": [at(f"2026-10-{d} 00:00") for d in (23, 24, 25)]
    + [at(f"2026-10-{d} 01:00") for d in (26, 27, 28, 29, 30, 31)]
    + [at("2026-11-01 01:00"), at("2026-11-02 01:00")],
    # Sunday 01:00 New York: EDT (UTC-4) on 25 Oct; on 1 Nov 01:00 happens twice, the first (EDT) counts.
    "bob@readers.example": [at("2026-10-25 05:00"), at("2026-11-01 05:00")],
    # 23:00 Kolkata (UTC+5:30, no DST) is 17:30 UTC: the 18:00 tick sends it.
    "chen@readers.example": [at(f"2026-10-{d} 17:30") for d in range(23, 32)] + [at("2026-11-01 17:30")],
}
# The daemon is down: these ticks never run.
OUTAGES = [
    (at("2026-10-28 00:00"), at("2026-10-28 03:00")),  # across alice's due hour: caught up at 04:00
    (at("2026-10-29 18:00"), at("2026-10-29 18:00")),  # chen's 23:00 IST tick; the next is after local midnight
]
TWICE = {at("2026-10-25 00:00"), at("2026-10-25 01:00"), at("2026-11-01 05:00"), at("2026-11-01 06:00")}


def ticks() -> list[datetime]:
    out, t = [], START
    while t <= END:
        if not any(a <= t <= b for a, b in OUTAGES):
            out.append(t)
        t += timedelta(hours=1)
    return out


def arrival_plan() -> list[tuple[str, datetime, int]]:
    """(user, time, topic): a newsletter every five hours, in turn; alice gets nothing on 30-31 Oct."""
    users = list(USERS)
    plan, k, t = [], 0, START + timedelta(minutes=17)
    while t < END:
        user = users[k % 3]
        if not (user.startswith("alice") and at("2026-10-30 00:00") <= t < at("2026-11-01 00:00")):
            plan.append((user, t, (k // 3) % 4))
        k += 1
        t += timedelta(hours=5)
    return plan


@pytest.fixture
def world(tmp_path, database_url, smtp_sink):
    w = World.create(tmp_path, database_url, smtp_sink.url)
    for email, (zone, delivery, kindle) in USERS.items():
        w.add_user(email, timezone=zone, delivery=delivery, kindle=kindle)
    yield w
    w.close()


def grouped(arrivals):
    """Reading order inside a digest: the TOC groups by newsletter, groups in order of their oldest issue."""
    groups: dict[str, list] = {}
    for a in sorted(arrivals, key=lambda a: a.received_at):
        groups.setdefault(a.sender_name, []).append(a)
    return [a for group in groups.values() for a in group]


def test_a_week_of_digests_across_dst_changes(world, smtp_sink):
    plan = arrival_plan()
    run_ticks = ticks()
    pending = list(plan)
    sends_by_tick: dict[datetime, int] = defaultdict(int)
    for tick in run_ticks:
        while pending and pending[0][1] <= tick:
            user, when, topic = pending.pop(0)
            world.arrive(user, when, topic=topic)
        before = len(smtp_sink.messages)
        run = compile_and_deliver_due(world.pipeline, tick)
        assert not run.retry, run.retry
        assert run.sent == len(smtp_sink.messages) - before
        sends_by_tick[tick] += run.sent
        if tick in TWICE:  # the same hour again (a re-executed run): nothing new is sent
            again = compile_and_deliver_due(world.pipeline, tick)
            assert again.sent == 0 and len(smtp_sink.messages) == before + run.sent

    # What should have arrived, from the hand-written due times and the arrivals.
    expected: list[tuple[str, datetime, datetime, list]] = []  # (user, due, tick, arrivals)
    empty_periods = 0
    for user, dues in DUE.items():
        taken: set[int] = set()
        for due in dues:
            tick = next(t for t in run_ticks if t >= due)
            new = [a for a in world.arrivals if a.user == user and a.received_at <= tick and a.number not in taken]
            taken |= {a.number for a in new}
            if new:
                expected.append((user, due, tick, new))
            else:
                empty_periods += 1
    # The scenario covers what it claims to.
    assert empty_periods >= 2, "some periods should have nothing new"
    chen_skipped = next(e for e in expected if e[0].startswith("chen") and e[1] == at("2026-10-29 17:30"))
    assert chen_skipped[2] == at("2026-10-29 19:00") and any(
        a.received_at <= chen_skipped[1] for a in chen_skipped[3]
    ), "chen's 29 Oct digest is caught up after local midnight"
    assert next(e for e in expected if e[0].startswith("alice") and e[1] == at("2026-10-28 01:00"))[2] == at(
        "2026-10-28 04:00"
    )

    got = received_digests([m["data"] for m in smtp_sink.messages])
    assert len(got) == len(smtp_sink.messages) == len(expected)
    by_kindle = defaultdict(list)
    for digest in got:
        by_kindle[digest.to].append(digest)
    for user in USERS:
        kindle = USERS[user][2]
        mine = [e for e in expected if e[0] == user]
        assert len(by_kindle[kindle]) == len(mine), user
        zone = ZoneInfo(USERS[user][0])
        kind = "Daily" if "daily" in USERS[user][1] else "Weekly"
        for (u, due, tick, arrivals), digest in zip(mine, by_kindle[kindle]):
            # Dated for the user's local day of the period, in the title, the subject and on the cover.
            assert digest.subject == f"{kind} digest — {format_date(due.astimezone(zone))}"
            assert digest.markers() == [a.marker for a in grouped(arrivals)], (user, due)
            by_marker = {a.marker: a for a in arrivals}
            for text, marker in zip(digest.chapters, digest.markers()):
                assert normalise(by_marker[marker].subject) in normalise(text)  # its title heads the chapter

    # Every newsletter is in exactly one digest; what arrived after the last due time still waits.
    sent_markers = [m for d in got for m in d.markers()]
    assert len(sent_markers) == len(set(sent_markers))
    last_tick = {u: max(e[2] for e in expected if e[0] == u) for u in USERS}
    waiting = {a.marker for a in world.arrivals if a.received_at > last_tick[a.user]}
    assert set(sent_markers) == {a.marker for a in world.arrivals} - waiting
    assert waiting, "the last arrivals wait for the next digest"

    with world.pipeline.sessions() as session:
        statuses = dict(
            session.execute(select(Newsletter.status, func.count()).group_by(Newsletter.status)).all()
        )
        assert statuses == {"delivered": len(sent_markers), "held_for_digest": len(waiting)}
        assert session.scalar(select(func.count()).select_from(InboundEmail).where(InboundEmail.state == "delivered")) == len(sent_markers)
        assert session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) == len(got)
        digest_rows = dict(session.execute(select(Digest.status, func.count()).group_by(Digest.status)).all())
        assert digest_rows == {"delivered": len(got), "empty": empty_periods}
    # After the last tick nothing is left to do.
    assert not due_work(world.pipeline, END)


def test_nothing_new_sends_nothing(world, smtp_sink):
    run = compile_and_deliver_due(world.pipeline, at("2026-10-26 06:00"))
    assert run.sent == 0 and smtp_sink.messages == []
    assert {o.status for o in run.outcomes} == {"empty"}
    # The period is done: the next hour finds nothing due.
    assert not due_work(world.pipeline, at("2026-10-26 07:00"))


def test_no_kindle_keeps_newsletters_and_tells_the_user_once(tmp_path, database_url, smtp_sink):
    world = World.create(tmp_path, database_url, smtp_sink.url)
    try:
        world.add_user("dana@readers.example", timezone="UTC", delivery="daily@07", kindle=None)
        world.arrive("dana@readers.example", at("2026-10-26 05:00"))
        for hour in (7, 8):
            run = compile_and_deliver_due(world.pipeline, at(f"2026-10-26 {hour:02d}:00"))
            assert [o.status for o in run.outcomes] == ["no_kindle"]
        notices = smtp_sink.parsed()
        assert len(notices) == 1 and notices[0]["To"] == "dana@readers.example"
        assert "Kindle" in notices[0]["Subject"]

        from inbox_pipeline.db.users import set_kindle

        with world.pipeline.sessions.begin() as session:
            set_kindle(session, world.users["dana@readers.example"], "dana@kindle.example")
        run = compile_and_deliver_due(world.pipeline, at("2026-10-26 09:00"))
        assert run.sent == 1
        got = received_digests([m["data"] for m in smtp_sink.messages])
        assert [d.to for d in got] == ["dana@kindle.example"] and got[0].markers() == ["marker001"]
    finally:
        world.close()


def test_an_unfinished_digest_is_finished_by_the_next_run(world, smtp_sink):
    """A run that died after choosing the newsletters: the next hour sends that digest, once."""
    from inbox_pipeline.db.digests import create_digest
    from inbox_pipeline.db.newsletters import newsletters_for_digest

    a = world.arrive("alice@readers.example", at("2026-10-26 00:30"))
    with world.pipeline.sessions.begin() as session:
        held = newsletters_for_digest(session, world.users["alice@readers.example"])
        create_digest(session, world.users["alice@readers.example"], "daily:2026-10-26", [n.id for n in held])
    run = compile_and_deliver_due(world.pipeline, at("2026-10-26 02:00"))
    assert [o.status for o in run.outcomes if o.user_email.startswith("alice")] == ["delivered"]
    got = received_digests([m["data"] for m in smtp_sink.messages])
    assert [(d.to, d.markers()) for d in got] == [("alice@kindle.example", [a.marker])]
    assert compile_and_deliver_due(world.pipeline, at("2026-10-26 03:00")).sent == 0


@pytest.fixture
def heavy_world(tmp_path, database_url, smtp_sink):
    # A 1 MB email budget: two of the three photos (~300 KB each once converted) fit in one email,
    # all three do not.
    w = World.create(tmp_path, database_url, smtp_sink.url, size_budget_bytes=1_000_000)
    w.add_user("erin@readers.example", timezone="Europe/Lisbon", delivery="daily@06", kindle="erin@kindle.example")
    yield w
    w.close()


def test_large_digest_is_split_into_volumes_each_sent_once(heavy_world, smtp_sink, java_available):
    from inbox_pipeline.core.epubcheck import run_epubcheck_many

    world = heavy_world
    photos = [noise_jpeg(700, seed) for seed in range(3)]
    assert all(len(p) > 350_000 for p in photos)
    arrivals = [
        world.arrive("erin@readers.example", at("2026-10-26 01:00") + timedelta(minutes=10 * k), topic=k, image=photo)
        for k, photo in enumerate(photos)
    ]
    run = compile_and_deliver_due(world.pipeline, at("2026-10-26 06:00"))
    assert compile_and_deliver_due(world.pipeline, at("2026-10-26 07:00")).sent == 0  # re-run: nothing twice

    got = received_digests([m["data"] for m in smtp_sink.messages])
    total = len(got)
    assert total >= 2 and run.sent == total
    budget = epub_budget(world.pipeline.options.size_budget_bytes)
    with world.pipeline.sessions() as session:
        stored = sum(session.scalars(select(Newsletter.epub_bytes)))
    assert stored > budget, "the scenario must not fit in one email"
    for n, digest in enumerate(got, start=1):
        assert len(digest.epub) <= budget
        assert len(smtp_sink.messages[n - 1]["data"]) <= world.pipeline.options.size_budget_bytes
        assert digest.subject == f"Daily digest — 26 Oct 2026 (Vol. {n} of {total})"
        assert re.search(rf"vol-{n}-of-{total}\.k-[a-z2-7]{{16}}\.epub$", digest.file_name), digest.file_name
        assert b"<img" in b"".join(_chapter_files(digest.epub))
    # Every newsletter once, oldest first across the volumes.
    assert [m for d in got for m in d.markers()] == [a.marker for a in arrivals]
    reports = run_epubcheck_many([d.epub for d in got], names=[d.file_name for d in got]).values()
    assert all(r.ok for r in reports), [r.summary() for r in reports]

    with world.pipeline.sessions() as session:
        digest = session.scalars(select(Digest)).one()
        assert digest.status == "delivered" and len(digest.epub_keys) == total
        assert sorted(session.scalars(select(DigestMember.volume))) == sorted(
            n for n, d in enumerate(got, start=1) for _ in d.markers()
        )
        parts = session.execute(select(Delivery.part, Delivery.status).where(Delivery.item_kind == "digest")).all()
        assert sorted(parts) == [(n, "sent") for n in range(1, total + 1)]


def test_one_chapter_over_the_budget_goes_as_a_download_link(tmp_path, database_url, smtp_sink):
    world = World.create(tmp_path, database_url, smtp_sink.url, size_budget_bytes=400_000)
    try:
        world.add_user("finn@readers.example", timezone="UTC", delivery="daily@06", kindle="finn@kindle.example")
        world.arrive("finn@readers.example", at("2026-10-26 01:00"), image=noise_jpeg(700, 7))
        run = compile_and_deliver_due(world.pipeline, at("2026-10-26 06:00"))
        assert [v.status for o in run.outcomes for v in o.volumes] == ["link_sent"]
        (message,) = smtp_sink.parsed()
        assert message["To"] == "finn@readers.example"  # the user's own email, not the Kindle
        assert "Too large for email: Daily digest — 26 Oct 2026" == message["Subject"]
        assert "storage/digests/" in message.get_body(("plain",)).get_content()
    finally:
        world.close()


def _chapter_files(epub: bytes) -> list[bytes]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(epub)) as zf:
        return [zf.read(n) for n in zf.namelist() if n.rsplit("/", 1)[-1].startswith("c0")]


def test_a_missing_epub_is_rebuilt_from_the_raw_email_and_an_unreadable_one_left_out(world, smtp_sink):
    from inbox_pipeline.db.models import InboundEmail

    alice = "alice@readers.example"
    kept, rebuilt, lost = (world.arrive(alice, at("2026-10-26 00:10") + timedelta(minutes=k), topic=k) for k in range(3))
    p = world.pipeline
    with p.sessions() as session:
        rows = {a.number: session.get(Newsletter, world.newsletter_ids[a.number]) for a in (rebuilt, lost)}
        lost_email = session.get(InboundEmail, rows[lost.number].inbound_email_id)
    for row in rows.values():
        p.storage.delete(row.epub_key)  # storage lost the EPUB ...
    p.inbox.delete_archived(lost_email.storage_key)  # ... and, for one, the raw email too
    p.parsed.clear()  # the digest runs in another run than the per-email runs: nothing parsed in memory

    run = compile_and_deliver_due(p, at("2026-10-26 01:00"))
    (got,) = received_digests([m["data"] for m in smtp_sink.messages])
    assert got.markers() == [kept.marker, rebuilt.marker]
    assert [o.status for o in run.outcomes if o.user_email == alice] == ["delivered"]
    with p.sessions() as session:
        left_out = session.get(Newsletter, world.newsletter_ids[lost.number])
        assert left_out.status == "failed" and "left out of digest" in left_out.reason
        assert session.get(InboundEmail, left_out.inbound_email_id).state == "failed"
        assert session.get(Newsletter, world.newsletter_ids[rebuilt.number]).status == "delivered"
    assert compile_and_deliver_due(p, at("2026-10-26 02:00")).sent == 0
