"""Monthly quota per user, in the user's own calendar month."""

from __future__ import annotations

from datetime import datetime, timezone

from inbox_pipeline.db.quota import consume_quota, month_period, quota_usage
from inbox_pipeline.db.users import add_user, set_plan

UTC = timezone.utc


def test_quota_stops_at_the_limit_and_resets_next_month(factory) -> None:
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    with factory.begin() as s:
        set_plan(s, "tiny", monthly_limit=3)
        uid = add_user(s, email="a@example.com", plan="tiny").id
    results = []
    for _ in range(5):
        with factory.begin() as s:
            results.append(consume_quota(s, uid, now))
    assert results == [True, True, True, False, False]
    with factory.begin() as s:
        usage = quota_usage(s, uid, now)
        assert (usage.period, usage.used, usage.limit, usage.exhausted) == ("2026-03", 3, 3, True)
        assert consume_quota(s, uid, datetime(2026, 4, 1, 12, tzinfo=UTC)) is True
        # raising the limit lets the month go on
        set_plan(s, "tiny", monthly_limit=4)
        assert consume_quota(s, uid, now) is True
        assert consume_quota(s, uid, now) is False


def test_month_is_the_users_local_month(factory) -> None:
    # 2026-03-31 23:30 UTC is already April in Tokyo, still March in New York.
    instant = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    assert month_period("Asia/Tokyo", instant) == "2026-04"
    assert month_period("America/New_York", instant) == "2026-03"
    with factory.begin() as s:
        set_plan(s, "one", monthly_limit=1)
        tokyo = add_user(s, email="t@example.com", timezone="Asia/Tokyo", plan="one").id
        assert consume_quota(s, tokyo, datetime(2026, 3, 31, 12, tzinfo=UTC)) is True  # March in Tokyo
        assert consume_quota(s, tokyo, instant) is True  # April in Tokyo: a fresh month
        assert consume_quota(s, tokyo, instant) is False


def test_unlimited_plan_counts_but_never_refuses(factory) -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)
    with factory.begin() as s:
        uid = add_user(s, email="u@example.com", plan="unlimited").id
        assert all(consume_quota(s, uid, now) for _ in range(60))
        usage = quota_usage(s, uid, now)
        assert (usage.used, usage.limit, usage.exhausted) == (60, None, False)


def test_zero_limit_refuses_everything(factory) -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)
    with factory.begin() as s:
        set_plan(s, "paused", monthly_limit=0)
        uid = add_user(s, email="p@example.com", plan="paused").id
        assert consume_quota(s, uid, now) is False
        assert quota_usage(s, uid, now).used == 0
