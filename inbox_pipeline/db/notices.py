"""Amazon's notices at the sender address: one row per inbound email, with what was decided.

Public functions (all take a ``Session``; none commits):

- ``recorded_notice(session, email_id) -> KindleNotice | None``: the decision an earlier attempt recorded
- ``record_notice(session, *, inbound_email_id, delivery_id, cause, code, authentic, trust_reason, action,
  summary, now=None) -> KindleNotice``
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox_pipeline.db.models import KindleNotice, utcnow


def recorded_notice(session: Session, email_id: int) -> KindleNotice | None:
    return session.scalar(select(KindleNotice).where(KindleNotice.inbound_email_id == email_id))


def record_notice(
    session: Session,
    *,
    inbound_email_id: int,
    delivery_id: int | None,
    cause: str,
    code: str | None,
    authentic: bool,
    trust_reason: str,
    action: str,
    summary: str,
    now: datetime | None = None,
) -> KindleNotice:
    row = KindleNotice(
        inbound_email_id=inbound_email_id,
        delivery_id=delivery_id,
        cause=cause,
        code=code,
        authentic=authentic,
        trust_reason=trust_reason[:2000],
        action=action,
        summary=summary,
        created_at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    return row
