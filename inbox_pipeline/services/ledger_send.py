"""The one ledger-guarded send: claim (committed) -> send -> mark, for every message that carries a book.

Instant delivery, digest volumes, safe-mode resends and Kindle test books all go through
``send_once``, so "exactly once" is one piece of code: a second claim for the same
(item, part, recipient, variant) loses, across processes; a claim never confirmed (the
worker died mid-send) is never resent automatically, because the Kindle may have it.
The send itself waits for its slot under the shared send rate (``Pipeline.mailer`` is paced:
services/pacing.py); a spent daily quota is a "retry", like a mail server's "try later".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from inbox_pipeline.db.ledger import (
    LEASE,
    MAY_HAVE_ARRIVED,
    claim_delivery,
    find_delivery,
    mark_delivery_failed,
    mark_delivery_sent,
)
from inbox_pipeline.seams.mailer import PermanentMailError, TransientMailError
from inbox_pipeline.services.context import Pipeline, utcnow

if TYPE_CHECKING:
    from email.message import EmailMessage


@dataclass(frozen=True)
class LedgerSend:
    """What happened to one send.

    ``status``: "sent"; or, sending nothing, "already_sent", "in_flight" (another run holds a
    fresh claim), "unconfirmed" (a claim, or a send, that may have gone out), "rejected"
    (Amazon's notice), "failed" (refused for good); or "retry" (the mail server said try later;
    the row can be claimed again).
    """

    status: str
    delivery_id: int
    recipient: str
    provider_message_id: str | None = None
    token: str | None = None
    detail: str = ""  # the mail server's words, or the existing row's reason
    claimed_at: datetime | None = None
    error: Exception | None = None  # the mail error behind "retry", "unconfirmed" and "failed" sends
    paced_seconds: float = 0.0  # how long the send-rate limiter held the message back


def send_once(
    pipeline: Pipeline,
    *,
    item_kind: str,
    item_id: int,
    recipient: str,
    build: "Callable[[str], EmailMessage]",
    user_id: int | None = None,
    device_id: int | None = None,
    part: int = 1,
    variant: str = "standard",
) -> LedgerSend:
    """Claim the ledger row, build the message with the row's token, send it, mark the row.

    Mail errors are recorded on the row and returned (``error``), never raised: each caller
    decides what a retry means for it.
    """
    key = dict(item_kind=item_kind, item_id=item_id, recipient=recipient, part=part, variant=variant)
    with pipeline.sessions.begin() as session:
        claim = claim_delivery(session, now=utcnow(), user_id=user_id, device_id=device_id, **key)
        if claim is None:
            row = find_delivery(session, **key)
            assert row is not None, "a lost claim always leaves its row"
            status = row.status
            if status == "claimed":
                status = "in_flight" if row.claimed_at > utcnow() - LEASE else "unconfirmed"
            elif status == "sent":
                status = "already_sent"
            return LedgerSend(
                status, row.id, row.recipient, row.provider_message_id, row.token, row.reason or "", row.claimed_at
            )
        claim_id, token, recipient = claim.id, claim.token, claim.recipient
    try:
        message = build(token)
        mailer = pipeline.mailer
    except Exception as exc:
        # Nothing was sent (storage or the mailer's configuration failed first): claimable again.
        with pipeline.sessions.begin() as session:
            mark_delivery_failed(session, claim_id, reason=f"not sent: {exc}"[:2000], retryable=True)
        raise
    try:
        result = mailer.send(message)
    except TransientMailError as exc:
        with pipeline.sessions.begin() as session:
            # maybe_sent: the relay may have it; never resend automatically.
            mark_delivery_failed(
                session, claim_id, reason=(f"{MAY_HAVE_ARRIVED}: {exc}" if exc.maybe_sent else str(exc))[:2000],
                retryable=not exc.maybe_sent,
            )
        return LedgerSend("unconfirmed" if exc.maybe_sent else "retry", claim_id, recipient, None, token, str(exc), error=exc)
    except PermanentMailError as exc:
        with pipeline.sessions.begin() as session:
            mark_delivery_failed(session, claim_id, reason=str(exc)[:2000], retryable=False)
        return LedgerSend("failed", claim_id, recipient, None, token, str(exc), error=exc)
    with pipeline.sessions.begin() as session:
        mark_delivery_sent(session, claim_id, provider_message_id=result.provider_message_id, now=utcnow())
    return LedgerSend("sent", claim_id, recipient, result.provider_message_id, token, paced_seconds=result.paced_seconds)
