"""Worker runs on the work queue, in virtual time: what a run claims, in which order, and when it stops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest

from inbox_pipeline.db.intake import get_inbound, register_inbound, set_state
from inbox_pipeline.db.models import InboundState
from inbox_pipeline.db.queue import Claim, QueueDepth, claim_next
from inbox_pipeline.services.context import Pipeline
from inbox_pipeline.services.intake import Registered
from inbox_pipeline.services.work import (
    EMAILS_PER_WORKER,
    POLL_SECONDS,
    WORKERS_PER_TICK,
    Worker,
    backoff_seconds,
    queue_depth,
    queue_taken,
    release_claims,
    workers_wanted,
)
from inbox_pipeline_tests.conftest import migrated

START = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


class VirtualTime:
    """A clock that moves only when the worker sleeps or a test says so; ``on_sleep`` runs after each sleep."""

    def __init__(self) -> None:
        self.now = START.timestamp()
        self.slept: list[float] = []
        self.on_sleep: Callable[[float], None] = lambda _elapsed: None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.on_sleep(self.elapsed)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def elapsed(self) -> float:
        return self.now - START.timestamp()

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.now, timezone.utc)


@pytest.fixture
def pipeline(database_url: str) -> Iterator[Pipeline]:
    migrated(database_url)
    with Pipeline(database_url=database_url, inbox_uri="", storage_uri="", mailer_uri="") as p:
        yield p


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


def _register(pipeline: Pipeline, names: list[str]) -> list[int]:
    with pipeline.sessions.begin() as s:
        return [
            register_inbound(s, storage_key=name, size=1, sha256="0" * 64, received_at=START)[0].id for name in names
        ]


def _take(pipeline: Pipeline, recipient: str, count: int, *, at: datetime = START) -> list[int]:
    """A take run: ``count`` emails for ``recipient`` registered and queued."""
    ids = _register(pipeline, [f"{recipient}-{at.timestamp()}-{i}" for i in range(count)])
    taken = [Registered(email_id=i, storage_key=f"k{i}", size=1, new=True, recipient=recipient) for i in ids]
    assert queue_taken(pipeline, taken, now=at) == count
    return ids


def _worker(pipeline: Pipeline, vt: VirtualTime, name: str = "run-1", **kwargs) -> Worker:
    return Worker(pipeline, name, clock=vt.clock, sleep=vt.sleep, **kwargs)


def test_queue_taken_queues_a_take_once(pipeline: Pipeline) -> None:
    ids = _register(pipeline, ["a", "b"])
    taken = [Registered(email_id=i, storage_key="x", size=1, new=True, recipient="A@in.example.com") for i in ids]
    assert queue_taken(pipeline, taken, now=START) == 2
    assert queue_taken(pipeline, taken, now=START) == 0  # the take run retried
    assert queue_taken(pipeline, []) == 0
    assert queue_depth(pipeline, now=START) == QueueDepth(due=2, later=0, claimed=0)


def test_a_worker_takes_named_emails_first_then_the_queue_then_ends_when_idle(pipeline, vt) -> None:
    alice = _take(pipeline, "alice@in.example.com", 2)
    bob = _take(pipeline, "bob@in.example.com", 1)
    held, theirs = _register(pipeline, ["held", "theirs"])
    with pipeline.sessions.begin() as s:
        for email_id in (held, theirs):
            set_state(s, email_id, InboundState.WAITING, "mailer outage", force=True)
    next(_worker(pipeline, vt, "run-0").claims([theirs]))  # another run holds ``theirs``

    worker = _worker(pipeline, vt, idle_seconds=10)
    got = []
    for claim in worker.claims([held, theirs]):
        got.append(claim)
        vt.advance(2)  # converting and sending it
        worker.done(claim.email_id)
    assert got == [Claim(held, 1), Claim(alice[0], 1), Claim(bob[0], 1), Claim(alice[1], 1)]
    assert worker.claimed == [held, alice[0], bob[0], alice[1]]
    # after the last it polled until nothing had been due for idle_seconds, then ended
    assert vt.elapsed == pytest.approx(4 * 2 + 10)
    assert sum(vt.slept) == pytest.approx(10) and max(vt.slept) <= POLL_SECONDS
    assert queue_depth(pipeline, now=vt.at) == QueueDepth(due=0, later=0, claimed=1)  # run-0's
    with pipeline.sessions() as s:
        assert get_inbound(s, theirs).claimed_by == "run-0"


def test_work_queued_while_the_worker_waits_is_taken_and_the_wait_starts_again(pipeline, vt) -> None:
    (first,) = _take(pipeline, "alice@in.example.com", 1)
    late = []

    def take_run(elapsed: float) -> None:
        if elapsed >= 6 and not late:
            late.extend(_take(pipeline, "bob@in.example.com", 1, at=vt.at))

    vt.on_sleep = take_run
    worker = _worker(pipeline, vt, idle_seconds=10)
    got = [(claim.email_id, vt.elapsed) for claim in worker.claims()]
    assert got == [(first, 0), (late[0], 6)]
    assert vt.elapsed == pytest.approx(16)


def test_a_worker_warms_up_once_while_nothing_is_due_and_a_failed_warm_up_costs_nothing(pipeline, vt) -> None:
    events: list[str] = []

    def warm() -> None:
        events.append(f"warm at {vt.elapsed:g}")
        vt.advance(1)  # importing, making clients
        raise ConnectionError("storage unreachable")  # the first email's own step would say so

    def take_run(elapsed: float) -> None:
        if elapsed >= 2 and not late:
            late.extend(_take(pipeline, "alice@in.example.com", 2, at=vt.at))

    late: list[int] = []
    vt.on_sleep = take_run
    worker = _worker(pipeline, vt, idle_seconds=10, warm=warm)
    for claim in worker.claims():
        events.append(f"claim {claim.email_id} at {vt.elapsed:g}")
        worker.done(claim.email_id)
    # warmed at once (nothing was due), then polled; the take run's emails were claimed as they came
    assert events == ["warm at 0", f"claim {late[0]} at 2", f"claim {late[1]} at 2"]
    assert worker.warm is None


def test_a_worker_with_work_due_at_once_claims_it_before_warming_up(pipeline, vt) -> None:
    (first,) = _take(pipeline, "alice@in.example.com", 1)
    events: list[str] = []
    worker = _worker(pipeline, vt, idle_seconds=1, warm=lambda: events.append("warm"))
    for claim in worker.claims():
        events.append(f"claim {claim.email_id}")
    assert events == [f"claim {first}", "warm"]  # warmed once the queue was empty, not before


def test_a_worker_stops_claiming_after_claim_for_seconds(pipeline, vt) -> None:
    emails = _take(pipeline, "alice@in.example.com", 10)
    worker = _worker(pipeline, vt, idle_seconds=10, claim_for_seconds=60)
    got = []
    for claim in worker.claims():
        got.append(claim.email_id)
        vt.advance(25)
        worker.done(claim.email_id)
    assert got == emails[:3]  # claimed at 0, 25 and 50 s; at 75 s its time was up
    assert vt.slept == []
    assert queue_depth(pipeline, now=vt.at) == QueueDepth(due=7, later=0, claimed=0)


def test_an_email_retried_later_is_due_again_only_after_its_back_off(pipeline, vt) -> None:
    (email,) = _take(pipeline, "alice@in.example.com", 1)
    worker = _worker(pipeline, vt, idle_seconds=60)
    got = []
    for claim in worker.claims():
        got.append((claim, vt.elapsed))
        if claim.attempt == 1:
            worker.retry_later(email, 30)  # a transient failure
            assert queue_depth(pipeline, now=vt.at) == QueueDepth(due=0, later=1, claimed=0)
        else:
            worker.done(email)
    assert [c for c, _ in got] == [Claim(email, 1), Claim(email, 2)]
    assert 30 <= got[1][1] < 30 + POLL_SECONDS + 1e-9


def test_a_worker_that_stops_waiting_leaves_the_retry_to_the_next_run(pipeline, vt) -> None:
    (email,) = _take(pipeline, "alice@in.example.com", 1)
    worker = _worker(pipeline, vt, idle_seconds=10)
    for claim in worker.claims():
        worker.retry_later(claim.email_id, 30)
    assert worker.claimed == [email]
    assert vt.elapsed == pytest.approx(10)
    assert queue_depth(pipeline, now=vt.at) == QueueDepth(due=0, later=1, claimed=0)

    vt.advance(19)  # 29 s after the failure: still waiting
    assert list(_worker(pipeline, vt, "run-2", idle_seconds=0).claims()) == []
    vt.advance(1)
    assert list(_worker(pipeline, vt, "run-3", idle_seconds=0).claims()) == [Claim(email, 2)]


def test_a_retried_run_resumes_its_own_claims_before_anything_else(pipeline, vt) -> None:
    emails = _take(pipeline, "alice@in.example.com", 3)
    first = _worker(pipeline, vt, "run-1").claims()
    assert next(first) == Claim(emails[0], 1)
    first.close()  # the op crashed working on it

    retried = _worker(pipeline, vt, "run-1", idle_seconds=0)
    claims = retried.claims()
    assert next(claims) == Claim(emails[0], 2)
    retried.done(emails[0])
    assert list(claims) == [Claim(emails[1], 1), Claim(emails[2], 1)]


def test_a_dead_runs_claims_are_released_and_the_exhausted_returned(pipeline, vt) -> None:
    a, b = _take(pipeline, "alice@in.example.com", 2)
    crashed = _worker(pipeline, vt, "run-1").claims()
    assert next(crashed) == Claim(a, 1)
    crashed.close()
    retried = _worker(pipeline, vt, "run-1").claims()  # the op's retry, then the run died
    assert [next(retried), next(retried)] == [Claim(a, 2), Claim(b, 1)]
    retried.close()

    released = release_claims(pipeline, "run-1", max_attempts=2)
    assert (released.queued, released.exhausted) == ([b], [a])
    with pipeline.sessions.begin() as s:
        assert claim_next(s, "run-2", now=vt.at) == Claim(b, 2)
        assert claim_next(s, "run-2", now=vt.at) is None
        assert get_inbound(s, a).queued_at is None


@pytest.mark.parametrize(
    ("due", "running", "limit", "wanted"),
    [
        (0, 0, 5, 0),
        (-3, 0, 5, 0),
        (1, 0, 5, 1),
        (EMAILS_PER_WORKER, 0, 5, 1),
        (EMAILS_PER_WORKER + 1, 0, 5, 2),
        (25, 1, 5, 2),
        (1000, 0, 5, WORKERS_PER_TICK),  # a few at a time: the next tick adds more
        (1000, 2, 5, WORKERS_PER_TICK),
        (1000, 4, 5, 1),
        (1000, 5, 5, 0),
        (1000, 7, 5, 0),  # more running than the limit: none more, never negative
        (5, 2, 5, 0),
    ],
)
def test_workers_wanted(due: int, running: int, limit: int, wanted: int) -> None:
    assert workers_wanted(due, running, limit) == wanted


def test_no_more_workers_while_a_take_run_goes() -> None:
    assert workers_wanted(1000, 2, 5, taking=True) == 0  # a take run is registering the burst: after it
    assert workers_wanted(1000, 0, 5, taking=True) == WORKERS_PER_TICK  # none running: someone must send
    assert workers_wanted(1000, 2, 5, taking=False) == WORKERS_PER_TICK


def test_backoff_doubles_with_each_attempt_within_half_either_way() -> None:
    def middle() -> float:
        return 0.5

    assert [backoff_seconds(a, 30, jitter=middle) for a in (0, 1, 2, 3, 4)] == [30, 30, 60, 120, 240]
    assert backoff_seconds(3, 30, jitter=lambda: 0.0) == 60
    assert backoff_seconds(3, 30, jitter=lambda: 0.999) == pytest.approx(179.88)
    waits = [backoff_seconds(2, 10) for _ in range(500)]
    assert all(10 <= w < 30 for w in waits) and max(waits) - min(waits) > 10


@pytest.mark.parametrize("outcome", ["done", "retry_later"])
def test_a_retried_run_takes_a_resumed_named_email_once(pipeline, vt, outcome: str) -> None:
    (held,) = _register(pipeline, ["held"])
    with pipeline.sessions.begin() as s:
        set_state(s, held, InboundState.WAITING, "mailer outage", force=True)
    crashed = _worker(pipeline, vt, "run-1").claims([held])  # a watchdog's run for held mail
    assert next(crashed) == Claim(held, 1)
    crashed.close()  # the op failed working on it; Dagster retries the op, same root run id

    retried = _worker(pipeline, vt, "run-1", idle_seconds=0)
    got = []
    for claim in retried.claims([held]):  # the retry has the same run config: ``held`` named again
        got.append((claim, vt.elapsed))
        if outcome == "done":
            retried.done(claim.email_id)
        else:
            retried.retry_later(claim.email_id, 60)
    assert got == [(Claim(held, 2), 0)]


def test_warm_up_makes_the_storage_client_and_reads_the_ses_quota_before_the_first_email(
    sqlite_url: str, aws_env: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker does while nothing is due: the first email then finds the S3 client made and the
    SES account's rate and quota read (here SES stops answering after the warm-up, and the run still
    keeps the account's 200 a day; unread, it would fall back to 1 a second and no quota)."""
    from inbox_pipeline.services.pacing import PacedMailer
    from inbox_pipeline.services.work import warm_up

    migrated(sqlite_url)
    with Pipeline(sqlite_url, "", f"s3://{s3_bucket}/epubs/", "ses") as p:
        warm_up(p)
        storage, mailer = p.storage, p.mailer
        assert isinstance(mailer, PacedMailer)
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # SES (and S3) unreachable from now on
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        limits = mailer.limits()
        assert (limits.rate, limits.daily) == (1.0, 200)  # moto's account, read during the warm-up
        warm_up(p)  # a second warm-up in the same run makes nothing again
        assert p.storage is storage and p.mailer is mailer
