"""Monthly quota: check-and-increment that cannot be raced past the limit.

Public functions (all take a ``Session``; none commits):

- ``consume_quota(session, user_id, now) -> bool``: True and one unit used, or
  False when the month's limit is reached (nothing changes).
- ``quota_usage(session, user_id, now) -> QuotaUsage(period, used, limit)``
- ``month_period(timezone, now) -> str``  ("YYYY-MM")

The month is the user's own calendar month (their IANA zone): a user in Tokyo
gets a fresh quota at their midnight on the 1st, not at UTC's.

The increment is one conditional ``UPDATE ... SET used = used + 1 WHERE used <
limit``: on PostgreSQL a concurrent transaction waits for the row lock and then
re-checks the condition on the committed value, and on SQLite transactions are
``BEGIN IMMEDIATE``; either way no interleaving can pass the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from inbox_pipeline.db._sql import upsert_insert
from inbox_pipeline.db.errors import NotFound
from inbox_pipeline.db.models import Plan, UsageCounter, User


@dataclass(frozen=True)
class QuotaUsage:
    period: str
    used: int
    limit: int | None  # None: unlimited

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.used >= self.limit


def month_period(timezone: str, now: datetime) -> str:
    return now.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def _user_plan(session: Session, user_id: int) -> tuple[str, int | None]:
    row = session.execute(
        select(User.timezone, Plan.monthly_limit).join(Plan, Plan.id == User.plan_id).where(User.id == user_id)
    ).first()
    if row is None:
        raise NotFound(f"no user #{user_id}")
    return row[0], row[1]


def consume_quota(session: Session, user_id: int, now: datetime) -> bool:
    timezone, limit = _user_plan(session, user_id)
    period = month_period(timezone, now)
    session.execute(
        upsert_insert(session, UsageCounter.__table__)
        .values(user_id=user_id, period=period, used=0)
        .on_conflict_do_nothing(index_elements=["user_id", "period"])
    )
    stmt = (
        update(UsageCounter)
        .where(UsageCounter.user_id == user_id, UsageCounter.period == period)
        .values(used=UsageCounter.used + 1)
        .execution_options(synchronize_session=False)
    )
    if limit is not None:
        stmt = stmt.where(UsageCounter.used < limit)
    return session.execute(stmt).rowcount == 1


def quota_usage(session: Session, user_id: int, now: datetime) -> QuotaUsage:
    timezone, limit = _user_plan(session, user_id)
    period = month_period(timezone, now)
    used = session.scalar(
        select(UsageCounter.used).where(UsageCounter.user_id == user_id, UsageCounter.period == period)
    )
    return QuotaUsage(period, int(used or 0), limit)
