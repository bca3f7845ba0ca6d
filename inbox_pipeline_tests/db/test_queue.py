"""The batch runs' work queue: queued once, claimed in fair order, once each, and let go again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from inbox_pipeline.db.engine import make_engine, session_factory
from inbox_pipeline.db.intake import get_inbound, register_inbound, set_state
from inbox_pipeline.db.models import InboundEmail, InboundState
from inbox_pipeline.db.queue import (
    Claim,
    QueueDepth,
    Released,
    claim,
    claim_next,
    enqueue,
    finish,
    queue_depth,
    release,
    release_worker,
    resume,
)
from inbox_pipeline_tests.conftest import migrated

from . import _race_workers
from ._races import run_race
from .conftest import NOW

SECOND = timedelta(seconds=1)


def _register(s, count: int, prefix: str) -> list[int]:
    return [
        register_inbound(s, storage_key=f"{prefix}-{i}", size=1, sha256="0" * 64, received_at=NOW)[0].id
        for i in range(count)
    ]


def _queued(factory, count: int, recipient: str, *, now=NOW) -> list[int]:
    """``count`` emails registered and queued for ``recipient``, in id order."""
    with factory.begin() as s:
        ids = _register(s, count, recipient)
        assert enqueue(s, [(i, recipient) for i in ids], now=now) == count
    return ids


def _claim_next(factory, worker: str, now) -> Claim | None:
    with factory.begin() as s:
        return claim_next(s, worker, now=now)


def _depth(factory, now=NOW) -> QueueDepth:
    with factory() as s:
        return queue_depth(s, now=now)


def _row(factory, email_id: int) -> InboundEmail:
    with factory() as s:
        return get_inbound(s, email_id)


def test_enqueue_is_idempotent_and_queues_only_emails_not_yet_worked_on(factory) -> None:
    with factory.begin() as s:
        fresh, other, parsed = _register(s, 3, "k")
        set_state(s, parsed, InboundState.PARSED, "parsed")
    with factory.begin() as s:
        queued = enqueue(s, [(fresh, "Alice@In.Example.com"), (other, ""), (parsed, "x@in.example.com"), (999, "y")],
                         now=NOW)
    assert queued == 2
    row = _row(factory, fresh)
    assert (row.queued_at, row.fair_key, row.claimed_by, row.attempts, row.not_before) == (
        NOW, "alice@in.example.com", None, 0, None)
    assert _row(factory, other).fair_key == ""
    assert _row(factory, parsed).queued_at is None
    assert _depth(factory) == QueueDepth(due=2, later=0, claimed=0)

    # a retried take queues nothing twice, and a claimed email is left with its worker
    first = _claim_next(factory, "w1", NOW)
    with factory.begin() as s:
        assert enqueue(s, [(fresh, "alice@in.example.com"), (other, "")], now=NOW + 5 * SECOND) == 0
    row = _row(factory, first.email_id)
    assert (row.queued_at, row.claimed_by, row.attempts) == (NOW, "w1", 1)
    assert _depth(factory) == QueueDepth(due=1, later=0, claimed=1)


def test_claims_serve_the_recipient_served_least_first(factory) -> None:
    alice = _queued(factory, 5, "alice@in.example.com")
    bob = _queued(factory, 1, "Bob@in.example.com")
    order = []
    for i in range(3):
        c = _claim_next(factory, "w1", NOW + i * SECOND)
        order.append(c.email_id)
        with factory.begin() as s:
            assert finish(s, c.email_id, "w1")  # last served is kept after the claim is done
    assert order == [alice[0], bob[0], alice[1]]

    # Carol's two arrive behind alice's three left: she has been served least, so both go first (then
    # alice's, served least recently once carol has had as many as she had).
    carol = _queued(factory, 2, "carol@in.example.com", now=NOW + 3 * SECOND)
    for i in range(3, 8):
        c = _claim_next(factory, f"w{i % 2}", NOW + i * SECOND)  # held, not finished: served all the same
        assert c is not None and c.attempt == 1
        order.append(c.email_id)
    assert order == [alice[0], bob[0], alice[1], carol[0], carol[1], alice[2], alice[3], alice[4]]
    assert _claim_next(factory, "w1", NOW + 10 * SECOND) is None
    assert _depth(factory, NOW + 10 * SECOND) == QueueDepth(due=0, later=0, claimed=5)


def test_claims_older_than_the_fair_window_do_not_count(factory) -> None:
    from inbox_pipeline.db.queue import FAIR_WINDOW

    alice = _queued(factory, 3, "alice@in.example.com")
    for i in range(2):
        assert _claim_next(factory, "w1", NOW + i * SECOND).email_id == alice[i]
    bob = _queued(factory, 2, "bob@in.example.com", now=NOW + 2 * SECOND)
    assert _claim_next(factory, "w1", NOW + 2 * SECOND).email_id == bob[0]  # served 0 against alice's 2
    # Past the window alice's two claims no longer count (0), bob's one still does (1): alice goes first.
    later = NOW + FAIR_WINDOW + 1.5 * SECOND
    assert [_claim_next(factory, "w1", later).email_id for _ in range(2)] == [alice[2], bob[1]]


def test_never_served_recipients_go_by_id(factory) -> None:
    bob = _queued(factory, 2, "bob@in.example.com")
    alice = _queued(factory, 2, "alice@in.example.com")
    got = [_claim_next(factory, "w1", NOW).email_id for _ in range(4)]  # one instant: ties all the way
    assert got == [bob[0], alice[0], bob[1], alice[1]]


def test_a_released_email_waits_out_its_back_off(factory) -> None:
    (email,) = _queued(factory, 1, "alice@in.example.com")
    assert _claim_next(factory, "w1", NOW) == Claim(email, 1)
    with factory.begin() as s:
        assert not release(s, email, "w2", not_before=NOW)  # not w2's to release
        assert release(s, email, "w1", not_before=NOW + 60 * SECOND)
    assert _depth(factory, NOW + 59 * SECOND) == QueueDepth(due=0, later=1, claimed=0)
    assert _claim_next(factory, "w2", NOW + 59 * SECOND) is None

    (other,) = _queued(factory, 1, "bob@in.example.com", now=NOW + 30 * SECOND)
    assert _claim_next(factory, "w2", NOW + 59 * SECOND) == Claim(other, 1)  # the due one meanwhile

    assert _depth(factory, NOW + 60 * SECOND) == QueueDepth(due=1, later=0, claimed=1)
    assert _claim_next(factory, "w2", NOW + 60 * SECOND) == Claim(email, 2)
    row = _row(factory, email)
    assert (row.claimed_by, row.not_before, row.claimed_at) == ("w2", None, NOW + 60 * SECOND)


def test_finish_takes_the_email_out_of_the_queue(factory) -> None:
    (email,) = _queued(factory, 1, "alice@in.example.com")
    _claim_next(factory, "w1", NOW)
    with factory.begin() as s:
        assert not finish(s, email, "w2")
        assert finish(s, email, "w1")
        assert not finish(s, email, "w1")  # done with already
    row = _row(factory, email)
    assert (row.queued_at, row.claimed_by, row.claimed_at) == (None, None, NOW)
    assert _depth(factory) == QueueDepth(0, 0, 0)
    assert _claim_next(factory, "w1", NOW + SECOND) is None
    with factory.begin() as s:
        assert resume(s, "w1", now=NOW) == []


def test_resume_returns_the_workers_own_claims_counted_again(factory) -> None:
    a, b, c = _queued(factory, 3, "alice@in.example.com")
    for worker in ("w1", "w2", "w1"):
        _claim_next(factory, worker, NOW)
    with factory.begin() as s:
        assert resume(s, "w1", now=NOW + SECOND) == [Claim(a, 2), Claim(c, 2)]
    with factory.begin() as s:
        assert resume(s, "w1", now=NOW + 2 * SECOND) == [Claim(a, 3), Claim(c, 3)]
        assert resume(s, "w3", now=NOW) == []
    assert [(_row(factory, i).claimed_by, _row(factory, i).attempts) for i in (a, b, c)] == [
        ("w1", 3), ("w2", 1), ("w1", 3)]
    assert _row(factory, a).claimed_at == NOW + 2 * SECOND
    assert _depth(factory) == QueueDepth(0, 0, 3)


def test_a_named_email_is_claimed_queued_or_not_but_never_from_another_worker(factory) -> None:
    with factory.begin() as s:
        (held,) = _register(s, 1, "held")
        set_state(s, held, InboundState.WAITING, "mailer outage", force=True)
    (queued,) = _queued(factory, 1, "alice@in.example.com")

    with factory.begin() as s:
        assert claim(s, held, "w1", now=NOW) == Claim(held, 1)
    row = _row(factory, held)
    assert (row.queued_at, row.claimed_by, row.claimed_at, row.attempts, row.fair_key) == (NOW, "w1", NOW, 1, "")
    with factory.begin() as s:
        assert claim(s, held, "w2", now=NOW + SECOND) is None
    row = _row(factory, held)
    assert (row.claimed_by, row.attempts, row.claimed_at) == ("w1", 1, NOW)

    with factory.begin() as s:
        assert claim(s, queued, "w2", now=NOW) == Claim(queued, 1)
    assert _row(factory, queued).fair_key == "alice@in.example.com"
    assert _claim_next(factory, "w3", NOW) is None
    assert _depth(factory) == QueueDepth(0, 0, 2)


def test_a_workers_claims_go_back_when_it_ends_the_exhausted_taken_out(factory) -> None:
    last, mid, fresh, others = _queued(factory, 4, "alice@in.example.com")
    with factory.begin() as s:  # w1's run was retried twice: each resumed claim counts again
        claim(s, last, "w1", now=NOW)
        resume(s, "w1", now=NOW)
        claim(s, mid, "w1", now=NOW)
        resume(s, "w1", now=NOW)
        claim(s, fresh, "w1", now=NOW)
        claim(s, others, "w2", now=NOW)
    assert [_row(factory, e).attempts for e in (last, mid, fresh, others)] == [3, 2, 1, 1]

    with factory.begin() as s:
        released = release_worker(s, "w1", max_attempts=3)
    assert (sorted(released.queued), released.exhausted) == ([mid, fresh], [last])
    row = _row(factory, last)
    assert (row.queued_at, row.claimed_by) == (None, None)
    for email in (mid, fresh):
        row = _row(factory, email)
        assert (row.queued_at, row.claimed_by) == (NOW, None)
    assert _row(factory, others).claimed_by == "w2"
    assert _depth(factory) == QueueDepth(due=2, later=0, claimed=1)

    got = {_claim_next(factory, "w3", NOW + SECOND), _claim_next(factory, "w3", NOW + 2 * SECOND)}
    assert got == {Claim(mid, 3), Claim(fresh, 2)}
    assert _claim_next(factory, "w3", NOW + 3 * SECOND) is None  # the exhausted one is not queued again
    with factory.begin() as s:
        assert release_worker(s, "w1", max_attempts=3) == Released()


def test_queue_depth_counts_due_later_and_claimed(factory) -> None:
    emails = _queued(factory, 7, "alice@in.example.com")
    with factory.begin() as s:
        (_unqueued,) = _register(s, 1, "unqueued")
        for email in emails[:5]:
            claim(s, email, "w1", now=NOW)
        release(s, emails[0], "w1", not_before=NOW + 10 * SECOND)
        release(s, emails[1], "w1", not_before=NOW)
        finish(s, emails[2], "w1")
    # due: 5, 6 and 1 (due at NOW itself); later: 0; claimed: 3, 4; 2 done with
    assert _depth(factory, NOW) == QueueDepth(due=3, later=1, claimed=2)
    assert _depth(factory, NOW - SECOND) == QueueDepth(due=2, later=2, claimed=2)
    assert _depth(factory, NOW + 10 * SECOND) == QueueDepth(due=4, later=0, claimed=2)


# --- real processes claiming from one queue ---------------------------------------------

PROCESSES = 6


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_processes_claiming_at_once_take_each_email_exactly_once(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    migrated(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    try:
        ids = []
        for n, recipient in enumerate(["a@x.example", "b@x.example", "c@x.example", "d@x.example"]):
            ids += _queued(factory, 10 + 5 * n, recipient)
        outcomes = run_race(_race_workers.queue_claim_worker, url, [f"w{i}" for i in range(PROCESSES)], timeout=180)
        assert [o for o in outcomes.values() if isinstance(o, str)] == []

        claimed = [email for got in outcomes.values() for email in got]
        assert sorted(claimed) == sorted(ids)  # every one, none twice
        assert sum(1 for got in outcomes.values() if got) >= 2  # they did contend
        with factory() as s:
            holders = dict(s.execute(select(InboundEmail.id, InboundEmail.claimed_by)).all())
            assert {e: holders[e] for e in ids} == {e: f"w{i}" for i, got in outcomes.items() for e in got}
            assert set(s.scalars(select(InboundEmail.attempts))) == {1}
    finally:
        engine.dispose()
