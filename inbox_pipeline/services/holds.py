"""Our outages hold emails instead of failing them: state ``waiting``, the cause in the reason.

An email a step could not finish because the mailer, storage or EPUBCheck is
unusable is no fault of its own: it waits (its user is told nothing) and the
deployment watchdog resumes it in a new run once the cause has cleared. The
cause is the reason's first words (``waiting for the mailer: ...``), so the
watchdog can pick the emails one cause holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from inbox_pipeline.core.epubcheck import EpubCheckUnavailable
from inbox_pipeline.db.intake import advance_state
from inbox_pipeline.db.intake import waiting_emails as held_emails
from inbox_pipeline.db.models import InboundState
from inbox_pipeline.seams._aws import error_code
from inbox_pipeline.seams.mailer import TransientMailError

if TYPE_CHECKING:  # the context module builds seams through this one's UnusableConfiguration
    from inbox_pipeline.services.context import Pipeline

MAILER = "mailer"
STORAGE = "storage"
EPUBCHECK = "epubcheck"
CONFIGURATION = "configuration"
CAUSES = {
    MAILER: "the mailer",
    STORAGE: "storage",
    EPUBCHECK: "EPUBCheck",
    CONFIGURATION: "a configuration fix",
}
IMMEDIATE = (EPUBCHECK, CONFIGURATION)  # retrying the step cannot help: held at the first attempt


class UnusableConfiguration(ValueError):
    """A setting that cannot work (an unparsable mailer URI, ...): no email is to blame."""


@dataclass(frozen=True)
class Waiting:
    email_id: int
    storage_key: str
    cause: str
    reason: str
    since: datetime


def outage_cause(exc: BaseException) -> str | None:
    """Which of our outages ``exc`` is, or None (the email's own problem, or a bug)."""
    if isinstance(exc, UnusableConfiguration):
        return CONFIGURATION
    if isinstance(exc, EpubCheckUnavailable):
        return EPUBCHECK
    if isinstance(exc, TransientMailError):
        return None if exc.maybe_sent else MAILER  # maybe sent: never resent on its own
    if _is_connection_error(exc) or _no_such_bucket(exc):
        return STORAGE
    return None


def _no_such_bucket(exc: BaseException) -> bool:
    """The bucket is gone or misnamed: our configuration, whichever email met it first."""
    return isinstance(exc, Exception) and error_code(exc) == "NoSuchBucket"


def _is_connection_error(exc: BaseException) -> bool:
    """S3 (or a folder's disk) could not be reached: botocore's connection errors, OS-level ones."""
    return isinstance(exc, BotoConnectionError | HTTPClientError | ConnectionError | TimeoutError)


def reason_for(cause: str, detail: str) -> str:
    return f"waiting for {CAUSES[cause]}: {' '.join(detail.split())}"[:2000]


def cause_of(reason: str | None) -> str | None:
    for cause, words in CAUSES.items():
        if (reason or "").startswith(f"waiting for {words}:"):
            return cause
    return None


def hold_email(pipeline: Pipeline, email_id: int, cause: str, detail: str) -> bool:
    """Put the email in ``waiting`` with its cause; False when it is already finished (kept as is)."""
    with pipeline.sessions.begin() as session:
        return advance_state(session, email_id, InboundState.WAITING, reason_for(cause, detail))


def waiting_emails(pipeline: Pipeline, *, limit: int = 500) -> list[Waiting]:
    """The emails our outages hold, oldest first."""
    with pipeline.sessions() as session:
        rows = held_emails(session, limit=limit)
    return [
        Waiting(r.email_id, r.storage_key, cause_of(r.reason) or CONFIGURATION, r.reason or "", r.since) for r in rows
    ]
