"""Worker runs and the work queue: a burst's emails go to runs as runs free up, fairly by recipient.

The inbox sensor requests a take run for the emails it found (``services.intake`` registers and
archives each; ``queue_taken`` queues them) and worker runs to work the queue. A worker claims one
email at a time (``db.queue``: the recipient served least first), converts and delivers
it, and claims the next, until nothing has been due for ``idle_seconds``, or it has claimed for
``claim_for_seconds`` (then it ends and the sensor starts a fresh run, so no run lives for ever).
A transient failure puts the email back in the queue with the retry policy's back-off, so one
email's outage never holds up the others; a worker that dies leaves its claims to the run-failure
sensor (``release_claims``), or to its own retry, which resumes them.

No Dagster here: the Dagster op (``defs/email/ops.py``) drives ``Worker``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from inbox_pipeline.db import queue as q
from inbox_pipeline.services.context import Pipeline, utcnow

IDLE_SECONDS = 5.0  # a worker waits this long for more work (a take run may still be queueing some)
POLL_SECONDS = 0.5
CLAIM_FOR_SECONDS = 15 * 60.0  # then the run ends and the sensor starts another (runs stay short)
EMAILS_PER_WORKER = 10  # the sensor starts a worker per this many emails due, up to the mail-run limit
WORKERS_PER_TICK = 2  # ... and at most this many more a tick (the next tick adds more while work is due)
_log = logging.getLogger(__name__)


def queue_taken(pipeline: Pipeline, registered: Iterable, *, now: datetime | None = None) -> int:
    """Queue the emails a take run registered (``services.intake.Registered``: id and recipient);
    those already queued or worked on are left as they are. Returns how many were queued."""
    emails = [(r.email_id, r.recipient) for r in registered]
    if not emails:
        return 0
    with pipeline.sessions.begin() as session:
        return q.enqueue(session, emails, now=now or utcnow())


def waiting_by_recipient(pipeline: Pipeline) -> dict[str, int]:
    """Queued emails no worker has claimed yet, by recipient (their fair key)."""
    with pipeline.sessions() as session:
        return q.waiting_by_key(session)


def queue_depth(pipeline: Pipeline, *, now: datetime | None = None) -> q.QueueDepth:
    with pipeline.sessions() as session:
        return q.queue_depth(session, now=now or utcnow())


def workers_wanted(due: int, running: int, limit: int, *, taking: bool = False) -> int:
    """How many more worker runs to request: one per ``EMAILS_PER_WORKER`` emails due, at most
    ``limit`` in all (the instance's limit on runs that send mail: more would only wait), and at most
    ``WORKERS_PER_TICK`` more at a time (each run process spends about 1.5 s of CPU starting, so
    starting them all at once delays every one of them, and the burst's first email with them).
    None more while some are running and ``taking`` (a take run is registering the burst: the machine
    is at its busiest, and a run starting then takes CPU from the workers serving the first emails)."""
    if due <= 0 or (running > 0 and taking):
        return 0
    want = min(limit, -(-due // EMAILS_PER_WORKER))
    return min(WORKERS_PER_TICK, max(0, want - running))


def release_claims(pipeline: Pipeline, worker: str, *, max_attempts: int) -> q.Released:
    """A worker run ended for good (failed, ended by run monitoring): its claims go back in the queue,
    but an email that has had ``max_attempts`` claims is taken out (returned in ``exhausted``)."""
    with pipeline.sessions.begin() as session:
        return q.release_worker(session, worker, max_attempts=max_attempts)


def warm_up(pipeline: Pipeline) -> None:
    """Make what a worker's first email would otherwise wait for: the steps' modules, the storage
    client (botocore loads its endpoint rules: about 0.3 s of CPU), the mailer and the send rate it
    keeps (SES: the account's quota, one call). A worker does this while nothing is due yet."""
    from inbox_pipeline.services import deliver, process, route  # noqa: F401 - imported for their cost
    from inbox_pipeline.services.pacing import PacedMailer

    pipeline.storage
    if isinstance(pipeline.mailer, PacedMailer):
        pipeline.mailer.limits()


def backoff_seconds(attempt: int, delay: float, *, jitter: Callable[[], float] = random.random) -> float:
    """Wait before attempt ``attempt + 1``: ``delay`` doubled each attempt, +-50 % (as the ops' RetryPolicy)."""
    return delay * 2 ** max(0, attempt - 1) * (0.5 + jitter())


@dataclass
class Worker:
    """One worker run's side of the queue (``worker``: the run's root id, kept by its retries)."""

    pipeline: Pipeline
    worker: str
    idle_seconds: float = IDLE_SECONDS
    claim_for_seconds: float = CLAIM_FOR_SECONDS
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    warm: Callable[[], None] | None = None  # run once, the first time nothing is due (``warm_up``)
    claimed: list[int] = field(default_factory=list)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def claims(self, named: Iterable[int] = ()) -> Iterator[q.Claim]:
        """Its own claims left by an earlier attempt, then ``named`` emails, then the queue, one at a
        time, each claimed only when the caller asks for the next."""
        sessions = self.pipeline.sessions
        with sessions.begin() as session:
            resumed = q.resume(session, self.worker, now=self._now())
        for claim in resumed:
            yield self._took(claim)
        for email_id in named:
            if email_id in self.claimed:  # resumed above: an earlier attempt of this run had it
                continue
            with sessions.begin() as session:
                claim = q.claim(session, email_id, self.worker, now=self._now())
            if claim is not None:
                yield self._took(claim)
        started = self.clock()
        idle_since = None
        while self.clock() - started < self.claim_for_seconds:
            with sessions.begin() as session:
                claim = q.claim_next(session, self.worker, now=self._now())
            if claim is not None:
                idle_since = None
                yield self._took(claim)
                continue
            if self.warm is not None:  # nothing due yet: get ready for the first email meanwhile
                self._warm_up()
                continue
            idle_since = self.clock() if idle_since is None else idle_since
            if self.clock() - idle_since >= self.idle_seconds:
                return
            self.sleep(POLL_SECONDS)

    def _warm_up(self) -> None:
        warm, self.warm = self.warm, None
        try:
            warm()
        except Exception as exc:  # noqa: BLE001 - the first email's own step meets it and says so
            _log.warning("warming up for the first email failed: %s: %s", type(exc).__name__, exc)

    def _took(self, claim: q.Claim) -> q.Claim:
        self.claimed.append(claim.email_id)
        return claim

    def done(self, email_id: int) -> None:
        """The worker is done with the email (delivered, stopped, held or failed: its state says)."""
        with self.pipeline.sessions.begin() as session:
            q.finish(session, email_id, self.worker)

    def retry_later(self, email_id: int, seconds: float) -> None:
        """A transient failure: back in the queue, due again in ``seconds``, for any worker."""
        with self.pipeline.sessions.begin() as session:
            q.release(session, email_id, self.worker, not_before=self._now() + timedelta(seconds=seconds))
