"""Paced sending: every message the pipeline sends waits for its slot under one shared rate.

``Pipeline.mailer`` is a ``PacedMailer`` whenever there is a rate to keep, so deliveries, digest
volumes, safe-mode resends, test books, notifications and operator alerts are all paced. The
rate and the daily quota are the SES account's own (``GetSendQuota``, read again every
``QUOTA_TTL_SECONDS``), or ``INBOX_PIPELINE_SEND_RATE`` / ``INBOX_PIPELINE_SEND_DAILY_QUOTA``
for any mailer (with SES: the lower of the two). The slots live in the app database
(``db/pace.py``), so all runs and processes share them; hosts' clocks must agree (NTP).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import getaddresses
from typing import TYPE_CHECKING

from inbox_pipeline.core.pace import Pace, QuotaSpent
from inbox_pipeline.db.pace import reserve_send
from inbox_pipeline.seams.mailer import Mailer, SendResult, SesMailer, TransientMailError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

QUOTA_TTL_SECONDS = 600.0  # SES raises an account's quota over time; read it again this often
RETRY_READ_SECONDS = 60.0  # after a failed read
FALLBACK_RATE = 1.0  # messages a second when SES's quota cannot be read and no rate is set: the sandbox's
_log = logging.getLogger(__name__)


class QuotaSpentError(TransientMailError):
    """The daily quota is spent: nothing was sent; the message says when sending resumes."""


def pace_for(mailer: Mailer, *, rate: float = 0.0, daily: int = 0) -> Pace | None:
    """The limits to keep: the configured ones, and with SES the account's (the lower of each);
    None when there is no rate to keep (an SMTP relay or an outbox without a configured rate)."""
    if isinstance(mailer, SesMailer):
        account_rate, account_daily = mailer.send_quota()
        rate = min(rate, account_rate) if rate > 0 else account_rate
        daily = min(daily, account_daily) if daily > 0 and account_daily > 0 else (daily or account_daily)
    return Pace(rate, daily) if rate > 0 else None


class PacedMailer(Mailer):
    """``inner`` behind the shared limiter: each send reserves its slot, waits for it, then goes."""

    def __init__(
        self,
        inner: Mailer,
        sessions: "sessionmaker[Session]",
        pace: Callable[[], Pace | None],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.inner, self.sessions, self._pace, self.clock, self.sleep = inner, sessions, pace, clock, sleep

    @property
    def sender(self) -> str:  # type: ignore[override]
        return self.inner.sender

    def __repr__(self) -> str:
        return f"PacedMailer({self.inner!r})"

    def check(self) -> None:
        self.inner.check()

    def limits(self) -> Pace | None:
        """The rate and quota kept now (SES's account read at most every ``QUOTA_TTL_SECONDS``)."""
        return self._pace()

    def send(self, message: EmailMessage) -> SendResult:
        pace = self.limits()
        if pace is None:
            return self.inner.send(message)
        asked = self.clock()
        with self.sessions.begin() as session:
            outcome = reserve_send(session, who=_who(message), now=asked, pace=pace)
        if isinstance(outcome, QuotaSpent):
            until = datetime.fromtimestamp(outcome.until, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            raise QuotaSpentError(
                f"the daily send quota is spent ({outcome.sent} of {pace.daily} in 24 hours); nothing was sent; "
                f"sending resumes after {until}"
            )
        delay = outcome.at - self.clock()
        if delay > 0:
            self.sleep(delay)
        return replace(self.inner.send(message), paced_seconds=outcome.waits)


def _who(message: EmailMessage) -> str:
    """Whom fairness is counted for: the first To address (a Kindle, a user, the operator)."""
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    return next((addr.lower() for _, addr in getaddresses(fields) if "@" in addr), "")


class CachedPace:
    """``pace_for`` read once and again every ``QUOTA_TTL_SECONDS`` (one SES call, not one per send)."""

    def __init__(self, mailer: Mailer, *, rate: float, daily: int, clock: Callable[[], float] = time.monotonic):
        self.mailer, self.rate, self.daily, self.clock = mailer, rate, daily, clock
        self._lock = threading.Lock()
        self._value: Pace | None = None
        self._read_at: float | None = None

    def __call__(self) -> Pace | None:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= QUOTA_TTL_SECONDS:
                try:
                    self._value = pace_for(self.mailer, rate=self.rate, daily=self.daily)
                    self._read_at = now
                except Exception as exc:  # noqa: BLE001 - SES unreachable, or no ses:GetSendQuota
                    if self._value is None:  # never read: the configured rate, else SES's lowest (the sandbox's)
                        self._value = Pace(self.rate or FALLBACK_RATE, self.daily)
                    _log.warning(
                        "could not read the SES account's send quota (%s); sending at %g a second until it can be "
                        "read (allow ses:GetSendQuota)", exc, self._value.rate,
                    )
                    self._read_at = now - QUOTA_TTL_SECONDS + RETRY_READ_SECONDS
            return self._value
