"""Inbound emails: registration, the state machine, routing and de-duplication.

Public functions (all take a ``Session``; none commits):

- ``register_inbound(session, *, storage_key, size, sha256, received_at) -> tuple[InboundEmail, bool]``
  idempotent on ``storage_key`` (INSERT .. ON CONFLICT DO NOTHING); ``True`` when new.
- ``mark_parsed(session, email_id, *, message_id, subject, sender, recipients, now=None) -> InboundEmail``
- ``route_inbound(session, email_id, *, recipients, message_id, content_sha256, now, note="") -> RouteDecision``
  resolves the envelope recipients to enabled addresses (``alias+tag@`` -> alias,
  case-insensitive), one per user: the first user's is this email, every further
  user gets a copy (a new row in ``received``, ``fanout_of_id`` -> this one, that
  user's address), so each user gets the email once and is charged alone. Each
  is de-duplicated per user by Message-ID and by content hash. The winner's
  keys are written into columns with unique constraints, so of two runs routing
  copies at the same time exactly one is ``routed`` and the other ``duplicate``. Calling it again for an email already decided returns the
  stored decision (safe for op retries).
- ``set_state(session, email_id, state, reason, *, now=None, force=False) -> InboundEmail``
  a compare-and-set along ``TRANSITIONS``; raises ``InvalidTransition``.
- ``advance_state(session, email_id, state, reason) -> bool``: ``set_state`` unless an earlier attempt
  got further (then False and its record stands); the caller's transaction goes on either way.
- ``newest_named(session, storage_keys) -> InboundEmail | None``, ``set_storage_key(session, email_id, key)``
- ``fanout_copies_to_process(session, *, limit) -> list[int]``
- ``waiting_emails(session, *, limit) -> list[HeldEmail]``: those our outages hold, oldest first
- ``stale_emails(session, states, before) -> StaleEmails | None``: how many sat in ``states`` since
  before ``before``, and the oldest
- ``get_inbound(session, email_id) -> InboundEmail``, ``inbound_state(session, email_id) -> str | None``
- ``raw_key(session, email) -> str`` the archived raw email a row reads (a copy reads its original's)
- ``find_inbound(session, *, storage_key=None, message_id=None) -> list[InboundEmail]``
- ``count_by_state(session, *, since=None) -> dict[str, int]``
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inbox_pipeline.db._sql import get_row, upsert_insert
from inbox_pipeline.db.errors import InvalidTransition
from inbox_pipeline.db.models import InboundAddress, InboundEmail, InboundState, User, utcnow
from inbox_pipeline.db.users import resolve_address

S = InboundState
_REPLAY = {S.RECEIVED}  # an operator may replay a finished email from the start
TRANSITIONS: dict[InboundState, set[InboundState]] = {
    S.RECEIVED: {S.PARSED, S.ROUTED, S.UNROUTABLE, S.DUPLICATE, S.QUARANTINED, S.UNREADABLE, S.KINDLE_NOTICE, S.FAILED,
                 S.WAITING},
    S.PARSED: {S.ROUTED, S.UNROUTABLE, S.DUPLICATE, S.QUARANTINED, S.KINDLE_NOTICE, S.FAILED, S.WAITING},
    S.ROUTED: {S.READY, S.OVER_QUOTA, S.CONFIRMATION_FORWARDED, S.DELIVERED, S.QUARANTINED, S.FAILED, S.WAITING},
    S.READY: {S.DELIVERED, S.OVER_QUOTA, S.FAILED, S.WAITING},
    S.OVER_QUOTA: {S.ROUTED, S.READY, S.FAILED} | _REPLAY,
    S.FAILED: set(S) - {S.FAILED},  # failures are retried from wherever they stopped
    S.WAITING: set(S) - {S.WAITING},  # held by an outage of ours: resumed from wherever it stopped
    S.UNROUTABLE: set(_REPLAY),
    S.DUPLICATE: set(_REPLAY),
    S.QUARANTINED: set(_REPLAY),
    S.UNREADABLE: set(_REPLAY),
    S.CONFIRMATION_FORWARDED: set(_REPLAY),
    S.DELIVERED: set(_REPLAY),
    S.KINDLE_NOTICE: set(_REPLAY),
}
# States in which routing has been decided: route_inbound returns the stored decision.
_DECIDED = {S.ROUTED, S.READY, S.DELIVERED, S.OVER_QUOTA, S.CONFIRMATION_FORWARDED, S.DUPLICATE, S.UNROUTABLE,
            S.QUARANTINED, S.KINDLE_NOTICE}


@dataclass(frozen=True)
class RouteDecision:
    state: InboundState  # ROUTED, UNROUTABLE or DUPLICATE (or the stored state when already decided)
    reason: str
    user_id: int | None
    address_id: int | None
    duplicate_of_id: int | None = None


def register_inbound(
    session: Session, *, storage_key: str, size: int, sha256: str, received_at: datetime
) -> tuple[InboundEmail, bool]:
    now = utcnow()
    stmt = (
        upsert_insert(session, InboundEmail.__table__)
        .values(
            storage_key=storage_key,
            size=size,
            sha256=sha256,
            state=S.RECEIVED.value,
            reason="registered from the inbox",
            received_at=received_at,
            created_at=now,
            state_changed_at=now,
        )
        .on_conflict_do_nothing(index_elements=["storage_key"])
        .returning(InboundEmail.__table__.c.id)
    )
    new_id = session.execute(stmt).scalar()
    email = session.scalar(
        select(InboundEmail).where(InboundEmail.storage_key == storage_key).execution_options(populate_existing=True)
    )
    assert email is not None
    return email, new_id is not None


def get_inbound(session: Session, email_id: int) -> InboundEmail:
    return get_row(session, InboundEmail, email_id, "inbound email")


def inbound_state(session: Session, email_id: int) -> str | None:
    """The email's state, or None when there is no such email."""
    return session.scalar(select(InboundEmail.state).where(InboundEmail.id == email_id))


def find_inbound(
    session: Session, *, storage_key: str | None = None, message_id: str | None = None
) -> list[InboundEmail]:
    query = select(InboundEmail).order_by(InboundEmail.id)
    if storage_key is not None:
        query = query.where(InboundEmail.storage_key == storage_key)
    if message_id is not None:
        query = query.where(InboundEmail.message_id == message_id.strip().strip("<>"))
    return list(session.scalars(query))


def set_state(
    session: Session,
    email_id: int,
    state: InboundState | str,
    reason: str,
    *,
    now: datetime | None = None,
    force: bool = False,
) -> InboundEmail:
    """Move the email to ``state`` with ``reason``; only along ``TRANSITIONS`` unless ``force``."""
    target = InboundState(state)
    sources = [s.value for s in S if force or s == target or target in TRANSITIONS[s]]
    # Compare-and-set: a concurrent run that moved the email first makes this one fail loudly.
    result = session.execute(
        update(InboundEmail)
        .where(InboundEmail.id == email_id, InboundEmail.state.in_(sources))
        .values(state=target.value, reason=reason, state_changed_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        email = get_inbound(session, email_id)
        raise InvalidTransition(f"inbound email #{email_id} cannot go from {email.state} to {target.value}")
    return get_inbound(session, email_id)


def advance_state(session: Session, email_id: int, state: InboundState | str, reason: str) -> bool:
    """``set_state`` in a savepoint; False (nothing changed) when the email is already past ``state``."""
    try:
        with session.begin_nested():
            set_state(session, email_id, state, reason)
    except InvalidTransition:
        return False
    return True


def newest_named(session: Session, storage_keys: Collection[str]) -> InboundEmail | None:
    """The newest email registered under one of ``storage_keys``."""
    query = select(InboundEmail).where(InboundEmail.storage_key.in_(storage_keys)).order_by(InboundEmail.id.desc())
    return session.scalars(query.limit(1)).first()


def set_storage_key(session: Session, email_id: int, storage_key: str) -> None:
    session.execute(update(InboundEmail).where(InboundEmail.id == email_id).values(storage_key=storage_key))


def fanout_copies_to_process(session: Session, *, limit: int) -> list[int]:
    """Fan-out copies still ``received``, oldest first."""
    return list(
        session.scalars(
            select(InboundEmail.id)
            .where(InboundEmail.state == S.RECEIVED.value, InboundEmail.fanout_of_id.is_not(None))
            .order_by(InboundEmail.id)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class HeldEmail:
    email_id: int
    storage_key: str
    reason: str | None
    since: datetime


def waiting_emails(session: Session, *, limit: int) -> list[HeldEmail]:
    rows = session.execute(
        select(InboundEmail.id, InboundEmail.storage_key, InboundEmail.reason, InboundEmail.state_changed_at)
        .where(InboundEmail.state == S.WAITING.value)
        .order_by(InboundEmail.id)
        .limit(limit)
    ).all()
    return [HeldEmail(*row) for row in rows]


@dataclass(frozen=True)
class StaleEmails:
    count: int
    oldest_id: int
    oldest_state: str
    since: datetime


def stale_emails(session: Session, states: Collection[str], before: datetime) -> StaleEmails | None:
    stale = (InboundEmail.state.in_(states), InboundEmail.state_changed_at < before)
    count = session.scalar(select(func.count()).where(*stale)) or 0
    if not count:
        return None
    oldest = session.execute(
        select(InboundEmail.id, InboundEmail.state, InboundEmail.state_changed_at)
        .where(*stale)
        .order_by(InboundEmail.state_changed_at)
        .limit(1)
    ).one()
    return StaleEmails(int(count), oldest[0], oldest[1], oldest[2])


def mark_parsed(
    session: Session,
    email_id: int,
    *,
    message_id: str | None,
    subject: str | None,
    sender: str | None,
    recipients: Sequence[str],
    now: datetime | None = None,
) -> InboundEmail:
    """Record what parsing found; the state moves to ``parsed`` unless it is already further."""
    email = get_inbound(session, email_id)
    email.message_id = _clean_message_id(message_id)
    email.subject = subject
    email.sender = sender
    email.recipients = list(recipients)
    session.flush()
    if InboundState(email.state) in (S.RECEIVED, S.FAILED, S.WAITING, S.PARSED):
        email = set_state(session, email_id, S.PARSED, f"parsed: {len(recipients)} recipient(s)", now=now)
    return email


def _clean_message_id(message_id: str | None) -> str | None:
    if message_id is None:
        return None
    value = message_id.strip().strip("<>").strip()
    return value[:998] or None


def raw_key(session: Session, email: InboundEmail) -> str:
    """The archived raw email this row reads: a fan-out copy reads its original's."""
    if email.fanout_of_id is None:
        return email.storage_key
    return get_inbound(session, email.fanout_of_id).storage_key


def route_inbound(
    session: Session,
    email_id: int,
    *,
    recipients: Iterable[str],
    message_id: str | None,
    content_sha256: str | None,
    now: datetime,
    note: str = "",
) -> RouteDecision:
    """Decide who this email is for (see the module docstring); ``note`` says where the recipients came from."""
    email = get_inbound(session, email_id)
    state = InboundState(email.state)
    if state in _DECIDED:
        return RouteDecision(state, email.reason or "", email.user_id, email.address_id, email.duplicate_of_id)

    recipients = [r for r in recipients if r]
    message_id = _clean_message_id(message_id)
    if email.fanout_of_id is not None:
        # A fan-out copy is for its own address only, whatever the envelope names.
        copy_for = session.get(InboundAddress, email.address_id) if email.address_id else None
        enabled = copy_for is not None and copy_for.enabled
        targets = [copy_for] if enabled else []
        disabled = [copy_for.address] if copy_for is not None and not enabled else []
    else:
        targets, disabled = _targets(session, recipients)

    if not targets:
        if disabled:
            reason = f"inbound address {', '.join(disabled)} is disabled"
        elif recipients:
            reason = f"no inbound address matches the envelope recipients: {', '.join(recipients)}"
        else:
            reason = note or "no envelope recipient recorded"
        email.recipients = recipients
        session.flush()
        set_state(session, email_id, S.UNROUTABLE, reason, now=now)
        return RouteDecision(S.UNROUTABLE, reason, None, None)

    address = targets[0]
    for other in targets[1:]:
        _fan_out(session, email, other, now)
    user_email = session.scalar(select(User.email).where(User.id == address.user_id))
    original = _find_original(session, address.user_id, message_id, content_sha256, exclude=email_id)
    # What routing found out about the email, stored whether it goes on or is a duplicate.
    routed_to = {
        "user_id": address.user_id,
        "address_id": address.id,
        "message_id": message_id,
        "content_sha256": content_sha256,
        "recipients": recipients,
    }
    if original is None:
        reason = f"routed to {user_email} via {address.address}"
        if len(targets) > 1:
            reason += f" ({len(targets) - 1} more user(s) among the envelope recipients get their own copy)"
        try:
            with session.begin_nested():
                result = session.execute(
                    update(InboundEmail)
                    .where(InboundEmail.id == email_id, InboundEmail.state.in_([s.value for s in _ROUTABLE]))
                    .values(
                        **routed_to,
                        dedup_message_id=message_id,
                        dedup_content_sha256=content_sha256,
                        state=S.ROUTED.value,
                        reason=reason,
                        state_changed_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
            if result.rowcount != 1:  # another run decided this email meanwhile
                email = get_inbound(session, email_id)
                return RouteDecision(
                    InboundState(email.state), email.reason or "", email.user_id, email.address_id,
                    email.duplicate_of_id,
                )
            return RouteDecision(S.ROUTED, reason, address.user_id, address.id)
        except IntegrityError:
            # A concurrent run routed a copy first (the unique constraint said so).
            original = _find_original(session, address.user_id, message_id, content_sha256, exclude=email_id)
            if original is None:  # pragma: no cover - the winner is committed when we see the conflict
                raise

    why = "same Message-ID" if message_id and original.dedup_message_id == message_id else "same content"
    reason = f"duplicate of inbound email #{original.id} ({why}) for {user_email}"
    session.execute(
        update(InboundEmail)
        .where(InboundEmail.id == email_id)
        .values(**routed_to, duplicate_of_id=original.id)
        .execution_options(synchronize_session=False)
    )
    set_state(session, email_id, S.DUPLICATE, reason, now=now)
    return RouteDecision(S.DUPLICATE, reason, address.user_id, address.id, original.id)


_ROUTABLE = {S.RECEIVED, S.PARSED, S.FAILED, S.WAITING}


def _targets(session: Session, recipients: Sequence[str]) -> tuple[list[InboundAddress], list[str]]:
    """The enabled addresses among ``recipients``, the first one per user, in envelope order; and the disabled ones."""
    targets: dict[int, InboundAddress] = {}
    disabled: list[str] = []
    for recipient in recipients:
        candidate = resolve_address(session, recipient)
        if candidate is None:
            continue
        if not candidate.enabled:
            disabled.append(candidate.address)
        else:
            targets.setdefault(candidate.user_id, candidate)
    return list(targets.values()), disabled


def _fan_out(session: Session, email: InboundEmail, address: InboundAddress, now: datetime) -> None:
    """A copy of ``email`` for a further user, in ``received`` (the inbox sensor requests its run);
    idempotent: the copy's key names the original and the address."""
    session.execute(
        upsert_insert(session, InboundEmail.__table__)
        .values(
            storage_key=f"{email.storage_key}#for={address.address}"[:1024],
            size=email.size,
            sha256=email.sha256,
            state=S.RECEIVED.value,
            reason=f"copy of inbound email #{email.id} for {address.address}: the envelope names several users",
            received_at=email.received_at,
            created_at=now,
            state_changed_at=now,
            fanout_of_id=email.id,
            user_id=address.user_id,
            address_id=address.id,
        )
        .on_conflict_do_nothing(index_elements=["storage_key"])
    )


def _find_original(
    session: Session, user_id: int, message_id: str | None, content_sha256: str | None, *, exclude: int
) -> InboundEmail | None:
    conditions = []
    if message_id:
        conditions.append(InboundEmail.dedup_message_id == message_id)
    if content_sha256:
        conditions.append(InboundEmail.dedup_content_sha256 == content_sha256)
    if not conditions:
        return None
    return session.scalar(
        select(InboundEmail)
        .where(InboundEmail.user_id == user_id, InboundEmail.id != exclude, or_(*conditions))
        .order_by(InboundEmail.id)
        .limit(1)
        .execution_options(populate_existing=True)
    )


def count_by_state(session: Session, *, since: datetime | None = None) -> dict[str, int]:
    """Emails per state (all states present, zero included), registered since ``since``."""
    query = select(InboundEmail.state, func.count()).group_by(InboundEmail.state)
    if since is not None:
        query = query.where(InboundEmail.created_at >= since)
    counts = {s.value: 0 for s in S}
    counts.update({state: int(n) for state, n in session.execute(query)})
    return counts
