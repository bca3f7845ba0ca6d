"""Amazon's notices at the sender address: one row per inbound email, with what was decided.

Public functions (all take a ``Session``; none commits):

- ``recorded_notice(session, email_id) -> KindleNotice | None``: the decision an earlier attempt recorded
- ``record_notice(session, notice, *, inbound_email_id, delivery_id, action, now=None) -> KindleNotice``: the
  notice as parsed (``core.kindle_notice.KindleNotice``) and the action taken
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox_pipeline.db.models import KindleNotice, utcnow

if TYPE_CHECKING:
    from inbox_pipeline.core.kindle_notice import KindleNotice as ParsedNotice


def recorded_notice(session: Session, email_id: int) -> KindleNotice | None:
    return session.scalar(select(KindleNotice).where(KindleNotice.inbound_email_id == email_id))


def record_notice(
    session: Session,
    notice: ParsedNotice,
    *,
    inbound_email_id: int,
    delivery_id: int | None,
    action: str,
    now: datetime | None = None,
) -> KindleNotice:
    row = KindleNotice(
        inbound_email_id=inbound_email_id,
        delivery_id=delivery_id,
        cause=notice.cause,
        code=notice.code,
        authentic=notice.authentic,
        trust_reason=notice.why[:2000],
        action=action,
        summary=notice.summary,
        created_at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    return row
