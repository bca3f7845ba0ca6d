"""Which digests are due: the user's local hour and weekday, across DST changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from inbox_pipeline.db.digests import create_digest, digest_newsletters, digest_period, due_digests, local_instant
from inbox_pipeline.db.intake import register_inbound
from inbox_pipeline.db.models import NewsletterStatus
from inbox_pipeline.db.newsletters import create_newsletter, get_newsletter, newsletters_for_digest
from inbox_pipeline.db.newsletters import set_newsletter_status
from inbox_pipeline.db.users import add_user

UTC = timezone.utc
STEP = timedelta(minutes=30)  # Asia/Kolkata is UTC+05:30: half hours hit its whole hours

# (email, zone, delivery spec)
USERS = [
    ("berlin-daily-02@example.com", "Europe/Berlin", "daily@02"),  # 02:00 skipped in spring, doubled in autumn
    ("berlin-daily-07@example.com", "Europe/Berlin", "daily@07"),
    ("berlin-weekly@example.com", "Europe/Berlin", "weekly@sun@02"),
    ("ny-daily-02@example.com", "America/New_York", "daily@02"),  # skipped in spring
    ("ny-daily-01@example.com", "America/New_York", "daily@01"),  # doubled in autumn
    ("ny-weekly@example.com", "America/New_York", "weekly@sun@01"),
    ("kolkata-daily@example.com", "Asia/Kolkata", "daily@07"),
    ("kolkata-weekly@example.com", "Asia/Kolkata", "weekly@mon@00"),
    ("utc-daily@example.com", "UTC", "daily@00"),
]

# Mondays 00:00 UTC before the weeks with the 2026 changes.
WINDOWS = {
    "berlin-spring": datetime(2026, 3, 23, tzinfo=UTC),  # Sunday 29 March: 02:00 -> 03:00
    "berlin-autumn": datetime(2026, 10, 19, tzinfo=UTC),  # Sunday 25 October: 03:00 -> 02:00
    "ny-spring": datetime(2026, 3, 2, tzinfo=UTC),  # Sunday 8 March: 02:00 -> 03:00
    "ny-autumn": datetime(2026, 10, 26, tzinfo=UTC),  # Sunday 1 November: 02:00 -> 01:00
}


def _simulate(factory, start: datetime, end: datetime) -> dict[str, list[tuple[datetime, str]]]:
    """A scheduler ticking every STEP: creates each due digest; returns the firings per user."""
    with factory.begin() as s:
        ids = {add_user(s, email=e, timezone=tz, delivery=spec).id: e for e, tz, spec in USERS}
    fired: dict[str, list[tuple[datetime, str]]] = {e: [] for e, _, _ in USERS}
    with factory.begin() as s:  # the scheduler was running before: periods already due are done
        for due in due_digests(s, start):
            create_digest(s, due.user_id, due.period_key, [])
    now = start + STEP
    while now < end:
        with factory.begin() as s:
            for due in due_digests(s, now):
                create_digest(s, due.user_id, due.period_key, [], period_start=due.period_start_utc)
                fired[ids[due.user_id]].append((now, due.period_key))
        now += STEP
    return fired


@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_each_period_fires_once_at_the_local_hour(factory, window: str) -> None:
    start = WINDOWS[window]
    end = start + timedelta(days=8)
    fired = _simulate(factory, start, end)
    for email, tz_name, spec in USERS:
        tz = ZoneInfo(tz_name)
        hour = int(spec.rsplit("@", 1)[1])
        firings = fired[email]
        keys = [k for _, k in firings]
        assert len(keys) == len(set(keys)), f"{email} fired twice for a period: {keys}"
        for when, key in firings:
            local = when.astimezone(tz)
            assert local.minute == 0, (email, when)
            assert local.fold == 0, f"{email} fired in the repeated hour's second pass at {when}"
            gap = local_instant(local.date(), hour, tz).astimezone(tz).hour != hour
            assert local.hour == (hour + 1 if gap else hour), (email, when, local)
            if spec.startswith("daily"):
                assert key == f"daily:{local.date().isoformat()}"
            else:
                day = spec.split("@")[1]
                assert local.strftime("%a").lower() == day, (email, when)
                iso = local.date().isocalendar()
                assert key == f"weekly:{iso.year}-W{iso.week:02d}"
        # every local day (week) wholly inside the window fired exactly once
        first_day = (start.astimezone(tz) + timedelta(days=1)).date()
        last_day = (end.astimezone(tz) - timedelta(days=1)).date()
        if spec.startswith("daily"):
            expected = {f"daily:{first_day + timedelta(days=i)}" for i in range((last_day - first_day).days + 1)}
            assert expected <= set(keys), (email, sorted(expected - set(keys)))
        else:
            assert len(keys) == 1, (email, keys)


EXPECTED = [
    # (zone, local date, hour) -> UTC instant the digest fires
    ("Europe/Berlin", date(2026, 3, 29), 2, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # no 02:00: at 03:00 CEST
    ("Europe/Berlin", date(2026, 3, 29), 7, datetime(2026, 3, 29, 5, 0, tzinfo=UTC)),  # 07:00 CEST
    ("Europe/Berlin", date(2026, 3, 28), 7, datetime(2026, 3, 28, 6, 0, tzinfo=UTC)),  # 07:00 CET
    ("Europe/Berlin", date(2026, 10, 25), 2, datetime(2026, 10, 25, 0, 0, tzinfo=UTC)),  # first 02:00 (CEST)
    ("America/New_York", date(2026, 3, 8), 2, datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),  # no 02:00: 03:00 EDT
    ("America/New_York", date(2026, 11, 1), 1, datetime(2026, 11, 1, 5, 0, tzinfo=UTC)),  # first 01:00 (EDT)
    ("America/New_York", date(2026, 11, 2), 1, datetime(2026, 11, 2, 6, 0, tzinfo=UTC)),  # 01:00 EST
    ("Asia/Kolkata", date(2026, 3, 29), 7, datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
]


@pytest.mark.parametrize(("zone", "day", "hour", "expected"), EXPECTED)
def test_local_instant(zone, day, hour, expected) -> None:
    assert local_instant(day, hour, ZoneInfo(zone)) == expected


def test_exact_firing_instants_across_dst(factory) -> None:
    start = WINDOWS["berlin-spring"]
    fired = _simulate(factory, start, start + timedelta(days=8))
    assert (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "daily:2026-03-29") in fired["berlin-daily-02@example.com"]
    assert fired["berlin-weekly@example.com"] == [(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "weekly:2026-W13")]
    assert (datetime(2026, 3, 29, 5, 0, tzinfo=UTC), "daily:2026-03-29") in fired["berlin-daily-07@example.com"]


def test_missed_ticks_are_caught_up_once_in_the_same_period(factory) -> None:
    with factory.begin() as s:
        uid = add_user(s, email="late@example.com", timezone="Europe/Berlin", delivery="daily@07").id
    before = datetime(2026, 6, 1, 4, 59, tzinfo=UTC)  # 06:59 CEST
    with factory.begin() as s:
        assert due_digests(s, before) == []
        later = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # the scheduler was down from 07:00 to 11:00 local
        (due,) = due_digests(s, later)
        assert (due.user_id, due.period_key, due.due_at_utc) == (uid, "daily:2026-06-01", datetime(2026, 6, 1, 5, tzinfo=UTC))
        assert due.period_start_utc == datetime(2026, 5, 31, 22, tzinfo=UTC)
        create_digest(s, uid, due.period_key, [])
    with factory.begin() as s:
        assert due_digests(s, datetime(2026, 6, 1, 21, 59, tzinfo=UTC)) == []  # 23:59 local: done today
        assert [d.period_key for d in due_digests(s, datetime(2026, 6, 2, 5, tzinfo=UTC))] == ["daily:2026-06-02"]


def test_instant_users_have_no_digest() -> None:
    with pytest.raises(ValueError):
        digest_period("UTC", "instant", 0, None, datetime(2026, 1, 1, tzinfo=UTC))


def test_digest_takes_held_newsletters_once_oldest_first(factory) -> None:
    now = datetime(2026, 6, 1, 9, tzinfo=UTC)
    with factory.begin() as s:
        uid = add_user(s, email="reader@example.com", delivery="daily@08").id
        ids = []
        for i, hours_ago in enumerate((1, 5, 3)):
            email, _ = register_inbound(s, storage_key=f"k{i}", size=1, sha256="0" * 64, received_at=now)
            n = create_newsletter(
                s, inbound_email_id=email.id, user_id=uid, address_id=None, sender_name="S", sender_email="s@x.example",
                subject=f"issue {i}", received_at=now - timedelta(hours=hours_ago), message_id=f"m{i}", raw_key=f"k{i}",
            )
            set_newsletter_status(s, n.id, NewsletterStatus.HELD_FOR_DIGEST)
            ids.append(n.id)
        held = newsletters_for_digest(s, uid)
        assert [n.subject for n in held] == ["issue 1", "issue 2", "issue 0"]
        (due,) = due_digests(s, now)
        digest = create_digest(s, uid, due.period_key, [n.id for n in held], period_start=due.period_start_utc)
        assert digest.status == "pending"
        again = create_digest(s, uid, due.period_key, [])
        assert again.id == digest.id
    with factory.begin() as s:
        assert [n.subject for n in digest_newsletters(s, digest.id)] == ["issue 1", "issue 2", "issue 0"]
        assert all(get_newsletter(s, i).status == "in_digest" for i in ids)
        assert newsletters_for_digest(s, uid) == []
        # a later period cannot take the same newsletters again: it comes out empty
        later = create_digest(s, uid, "daily:2026-06-02", ids)
        assert later.status == "empty" and digest_newsletters(s, later.id) == []
        assert due_digests(s, now) == []
