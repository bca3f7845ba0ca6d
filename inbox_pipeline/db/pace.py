"""The shared send-rate limiter's row: reserve a slot atomically, read its counters.

One row (``mail``), made by migration 0007. A reservation locks it (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's transactions here are ``BEGIN IMMEDIATE``, one writer at a time), so two
processes never get the same slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox_pipeline.core.pace import Pace, PaceState, QuotaSpent, Slot, reserve
from inbox_pipeline.db.models import SendPace

MAIL = "mail"


def reserve_send(session: Session, *, who: str, now: float, pace: Pace) -> Slot | QuotaSpent:
    """Reserve the next send to ``who`` (within the caller's transaction; commit it before waiting)."""
    query = select(SendPace).where(SendPace.name == MAIL).with_for_update().execution_options(populate_existing=True)
    row = session.scalars(query).one()
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


def pace_counters(session: Session) -> PaceCounters:
    """What the limiter did since the database was made."""
    row = session.get(SendPace, MAIL)
    return PaceCounters(int(row.sends), int(row.held), float(row.held_seconds), int(row.refused))
