"""A take run's intake: recipients taken in turns, and what arrives while it goes taken by the same run.

Real inboxes (a folder, and moto's S3 server), the app database in SQLite; the work queue is read
back as the worker runs would find it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from inbox_pipeline.db.models import InboundEmail
from inbox_pipeline.services.context import Pipeline
from inbox_pipeline.services.intake import TAKE_ROUND, in_turns, take_until_empty
from inbox_pipeline.services.work import waiting_by_recipient
from inbox_pipeline_tests.helpers import CallMeter, refuse_to_register, via_ses
from inbox_pipeline_tests.services.test_intake import pipeline_for


def email(n: int, to: str) -> bytes:
    raw = f"From: news@letters.example\r\nTo: {to}\r\nSubject: issue {n}\r\n\r\nbody {n}\r\n".encode()
    return via_ses(raw, to)


@pytest.fixture(params=["folder", "s3"])
def inbox_pipeline(request, sqlite_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    if request.param == "folder":
        uri = str(tmp_path / "inbox")
    else:
        request.getfixturevalue("aws_env")
        uri = f"s3://{request.getfixturevalue('s3_bucket')}/incoming/"
    with pipeline_for(sqlite_url, uri, tmp_path) as pipeline:
        yield pipeline


def rows(pipeline: Pipeline) -> list[tuple[int, str, str | None]]:
    """(id, archived name, fair key) in the order they were registered; fair key None: not queued."""
    with pipeline.sessions() as session:
        found = session.execute(
            select(InboundEmail.id, InboundEmail.storage_key, InboundEmail.fair_key).order_by(InboundEmail.id)
        )
        return [(i, key.rsplit("/", 1)[-1], fair) for i, key, fair in found]


def test_in_turns_gives_each_recipient_a_turn_in_order_of_first_appearance() -> None:
    assert in_turns(["a1", "a2", "a3", "b1", "a4", "c1", "b2"], key=lambda s: s[0]) == [
        "a1", "b1", "c1", "a2", "b2", "a3", "a4"
    ]
    assert in_turns([], key=str) == []
    assert in_turns(["X1", "x2"], key=lambda s: s[0]) == ["X1", "x2"]  # one recipient, whatever the case
    # Turns had before: the recipient taken fewest times goes first, then they alternate.
    assert in_turns(["a1", "a2", "a3", "b1", "b2", "c1"], key=lambda s: s[0], already={"a": 2, "c": 1}) == [
        "b1", "b2", "c1", "a1", "a2", "a3"  # b's 2nd turn is c's 2nd (c had one), a's 1st its 3rd
    ]


def test_a_second_users_emails_behind_anothers_hundreds_are_registered_and_queued_among_the_first(
    inbox_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inbox_pipeline.services.intake as intake

    # One intake thread: registrations happen in the order the take run hands them over, so the order
    # is the rule's and not the thread scheduler's (with 8 threads, 8 are under way at a time).
    monkeypatch.setattr(intake, "INTAKE_THREADS", 1)
    # The first user's 40 sort before the second user's 4, as a listing might hand them over.
    for n in range(40):
        inbox_pipeline.inbox.put(f"a{n:02d}", email(n, "heavy@in.example"))
    for n in range(4):
        inbox_pipeline.inbox.put(f"z{n}", email(100 + n, "light@in.example"))
    objects = inbox_pipeline.inbox.list_pending(100)
    assert [o.key for o in objects][-4:] == ["z0", "z1", "z2", "z3"]

    tick = take_until_empty(inbox_pipeline, objects)

    assert tick.queued == 44 and not tick.errors
    registered = rows(inbox_pipeline)
    assert len(registered) == 44 and all(fair for _, _, fair in registered)
    # The first (one a thread) goes at once, in listing order; of the rest, the one taken fewest times
    # goes first, then they take turns: the second user's 4 are registered 2nd, 4th, 6th and 8th, not last.
    order = ["light" if fair == "light@in.example" else "heavy" for _, _, fair in registered]
    assert order[:9] == ["heavy", "light", "heavy", "light", "heavy", "light", "heavy", "light", "heavy"]
    assert order[9:] == ["heavy"] * 35


def test_a_user_whose_emails_arrive_while_a_take_run_goes_is_taken_within_a_round(
    inbox_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inbox_pipeline.services.intake as intake

    monkeypatch.setattr(intake, "INTAKE_THREADS", 1)  # registrations in the order the run hands them over
    monkeypatch.setattr(intake, "QUEUED_AHEAD", 1000)  # no worker here: the heavy user's queue is never drained
    inbox = inbox_pipeline.inbox
    heavy = TAKE_ROUND * 2 + 20
    for n in range(heavy):
        inbox.put(f"a{n:03d}", email(n, "heavy@in.example"))
    named = inbox.list_pending(1000)
    rounds: list[int] = []

    def on_round(tick) -> None:  # the second user's 5 land while the first round is being taken
        rounds.append(len(tick.registered))
        if len(rounds) == 1:
            for n in range(5):
                inbox.put(f"z{n}", email(1000 + n, "light@in.example"))

    tick = take_until_empty(inbox_pipeline, named, on_round=on_round)

    assert tick.queued == heavy + 5 and not tick.errors
    assert rounds == [1 + TAKE_ROUND, 1 + 2 * TAKE_ROUND, heavy + 5]
    order = ["light" if fair == "light@in.example" else "heavy" for _, _, fair in rows(inbox_pipeline)]
    # The light user's five are the first of the next round, each before another of the heavy one's
    # (the heavy one had 51 taken), not behind the heavy user's remaining 70.
    after_first = order[1 + TAKE_ROUND:]
    assert after_first[:5] == ["light"] * 5 and order.count("light") == 5


def test_a_take_run_takes_what_arrives_while_it_goes_and_ends_when_a_listing_finds_nothing(
    inbox_pipeline: Pipeline,
) -> None:
    inbox = inbox_pipeline.inbox
    for n in range(3):
        inbox.put(f"first{n}", email(n, "reader@in.example"))
    named = inbox.list_pending(10)
    arrivals = iter([[f"second{n}" for n in range(5)], ["third0"], []])
    rounds = []

    def on_round(tick) -> None:  # the run's tags, after each round; here: more mail lands meanwhile
        rounds.append(len(tick.registered))
        for key in next(arrivals):
            inbox.put(key, email(len(key), "reader@in.example"))

    tick = take_until_empty(inbox_pipeline, named, on_round=on_round)

    assert rounds == [3, 8, 9]  # three rounds: the named three, then each listing's arrivals
    assert inbox.list_pending(10) == [] and tick.queued == 9
    assert sorted(name for _, name, _ in rows(inbox_pipeline)) == sorted(
        ["first0", "first1", "first2", "second0", "second1", "second2", "second3", "second4", "third0"]
    )


def test_a_take_run_reads_at_most_a_listing_page_ahead_of_what_it_has_registered(
    sqlite_url: str, tmp_path: Path, aws_env, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inbox_pipeline.services.intake as intake

    monkeypatch.setattr(intake, "LISTING_PAGE", 10)
    monkeypatch.setattr(intake, "TAKE_ROUND", 3)
    with pipeline_for(sqlite_url, f"s3://{s3_bucket}/incoming/", tmp_path) as pipeline:
        for n in range(40):
            pipeline.inbox.put(f"m{n:02d}", email(n, "reader@in.example"))
        named = pipeline.inbox.list_pending(1)
        meter = CallMeter(pipeline.inbox.client)  # each object is read with one GetObject
        ahead: list[int] = []

        tick = take_until_empty(pipeline, named, on_round=lambda t: ahead.append(meter.calls["GetObject"] - len(t.registered)))

        assert len(tick.registered) == 40 and meter.calls["GetObject"] == 40  # each read once
        assert ahead[-1] == 0 and 0 < max(ahead) <= 10  # a page ahead at most, not the whole burst


def test_a_take_run_leaves_objects_other_runs_have_and_tries_a_failing_one_once(inbox_pipeline: Pipeline) -> None:
    inbox = inbox_pipeline.inbox
    for key in ["m0", "m1", "lone", "stuck"]:
        inbox.put(key, email(len(key), "reader@in.example"))
    refuse_to_register(inbox_pipeline.sessions, "stuck")
    named = [o for o in inbox.list_pending(10) if o.key == "m0"]

    tick = take_until_empty(inbox_pipeline, named, busy=lambda: {"lone"})  # a per-email run has "lone"

    assert sorted(name for _, name, _ in rows(inbox_pipeline)) == ["m0", "m1"]
    # Listed once, refused once: not tried again in a later round.
    assert [key for key, _ in tick.not_taken] == ["stuck"] and "the disk refuses this one" in tick.errors[0]
    assert sorted(o.key for o in inbox.list_pending(10)) == ["lone", "stuck"]  # left for their runs


def test_a_take_run_stops_listing_after_its_time(inbox_pipeline: Pipeline) -> None:
    inbox = inbox_pipeline.inbox
    inbox.put("m0", email(0, "reader@in.example"))
    clock = iter([0.0, 301.0])  # started, then the first round took past TAKE_FOR_SECONDS
    named = inbox.list_pending(10)
    inbox.put("m1", email(1, "reader@in.example"))

    tick = take_until_empty(inbox_pipeline, named, clock=lambda: next(clock), for_seconds=300)

    assert [name for _, name, _ in rows(inbox_pipeline)] == ["m0"] and len(tick.registered) == 1
    assert [o.key for o in inbox.list_pending(10)] == ["m1"]  # the sensor's next tick starts another take run


def test_a_recipient_with_a_full_queue_waits_in_the_inbox_while_others_are_taken_at_once(
    inbox_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inbox_pipeline.services.intake as intake
    from inbox_pipeline.db import queue as q
    from inbox_pipeline.services.context import utcnow

    monkeypatch.setattr(intake, "QUEUED_AHEAD", 10)
    monkeypatch.setattr(intake, "TAKE_ROUND", 5)
    inbox = inbox_pipeline.inbox
    for n in range(30):
        inbox.put(f"a{n:02d}", email(n, "heavy@in.example"))
    named = inbox.list_pending(1)
    seen: list[dict[str, int]] = []
    pauses: list[float] = []

    def on_round(tick) -> None:
        seen.append(waiting_by_recipient(inbox_pipeline))
        if len(seen) == 1:  # the light user's 3 land while the heavy user's are being taken
            for n in range(3):
                inbox.put(f"z{n}", email(100 + n, "light@in.example"))

    def a_worker_claims_four(seconds: float) -> None:  # the take run waits: meanwhile a worker claims some
        pauses.append(seconds)
        seen.append(waiting_by_recipient(inbox_pipeline))
        for _ in range(4):
            with inbox_pipeline.sessions.begin() as session:
                claim = q.claim_next(session, "worker-1", now=utcnow())
            assert claim is not None

    tick = take_until_empty(inbox_pipeline, named, on_round=on_round, sleep=a_worker_claims_four)

    assert tick.queued == 33 and not tick.errors and tick.held_back == 0 and inbox.list_pending(50) == []
    # Never more than 10 of one recipient's unclaimed: the rest waited in the inbox, the run waiting with them.
    assert max(n for counts in seen for n in counts.values()) <= 10
    assert pauses and set(pauses) == {intake.WAIT_SECONDS}
    # The light user's 3 did not wait behind the heavy user's 30: queued in the round after they landed.
    order = ["light" if fair == "light@in.example" else "heavy" for _, _, fair in rows(inbox_pipeline)]
    assert order.index("light") < 10 and order.count("light") == 3 and order[:12].count("light") == 3


def test_what_a_full_queue_holds_back_when_the_run_is_out_of_time_stays_in_the_inbox(
    inbox_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inbox_pipeline.services.intake as intake

    monkeypatch.setattr(intake, "QUEUED_AHEAD", 4)
    inbox = inbox_pipeline.inbox
    for n in range(10):
        inbox.put(f"m{n}", email(n, "heavy@in.example"))
    named = inbox.list_pending(1)
    now = [0.0]

    def no_worker_claims(seconds: float) -> None:  # nothing drains the queue: time passes
        now[0] += seconds

    tick = take_until_empty(inbox_pipeline, named, clock=lambda: now[0], sleep=no_worker_claims, for_seconds=30)

    assert tick.queued == 4 and tick.held_back == 6 and 29 <= now[0] <= 31  # waited its time, no longer
    assert len(inbox.list_pending(50)) == 6  # not lost: the next take run takes them when the queue has room
    assert waiting_by_recipient(inbox_pipeline) == {"heavy@in.example": 4}
