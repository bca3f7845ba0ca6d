"""The shared send-rate limiter's row: reserve a slot atomically, read its counters.

One row per limiter (``mail``). A reservation locks the row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's transactions here are ``BEGIN IMMEDIATE``, one writer at a time), so two
processes never get the same slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inbox_pipeline.core.pace import Pace, PaceState, QuotaSpent, Slot, reserve
from inbox_pipeline.db.models import SendPace

MAIL = "mail"


def reserve_send(session: Session, *, who: str, now: float, pace: Pace, name: str = MAIL) -> Slot | QuotaSpent:
    """Reserve the next send to ``who`` (within the caller's transaction; commit it before waiting)."""
    row = _locked(session, name)
    outcome, state = reserve(PaceState.from_json(row.state), who=who, now=now, pace=pace)
    row.state = state.to_json()
    if isinstance(outcome, Slot):
        row.sends += 1
        if outcome.waits > 0:
            row.held += 1
            row.held_seconds += outcome.waits
    else:
        row.refused += 1
    row.updated_at = datetime.fromtimestamp(now, timezone.utc)
    return outcome


@dataclass(frozen=True)
class PaceCounters:
    sends: int
    held: int
    held_seconds: float
    refused: int
    updated_at: datetime | None


def pace_counters(session: Session, name: str = MAIL) -> PaceCounters:
    """What the limiter did since the database was made (zeros when nothing was paced yet)."""
    row = session.get(SendPace, name)
    if row is None:
        return PaceCounters(0, 0, 0.0, 0, None)
    return PaceCounters(int(row.sends), int(row.held), float(row.held_seconds), int(row.refused), row.updated_at)


def _locked(session: Session, name: str) -> SendPace:
    query = select(SendPace).where(SendPace.name == name).with_for_update().execution_options(populate_existing=True)
    row = session.scalars(query).first()
    if row is not None:
        return row
    try:
        with session.begin_nested():  # the first send ever: another process may insert it at once
            session.add(SendPace(name=name, state={}, sends=0, held=0, held_seconds=0.0, refused=0))
    except IntegrityError:
        pass
    return session.scalars(query).one()
