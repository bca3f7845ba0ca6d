"""Paced sending end to end: real SMTP server, real databases, real processes sharing one rate.

The runs wait in virtual time (``VirtualClock``): the tests see the times the limiter granted,
never the machine's speed. benchmarks/bounds.py paces the same sends on the real clock."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from email.message import EmailMessage
from functools import partial

import pytest
import time_machine

from inbox_pipeline.db.engine import make_engine, session_factory, upgrade
from inbox_pipeline.db.pace import pace_counters
from inbox_pipeline.services.context import Pipeline, PipelineOptions
from inbox_pipeline.services.pacing import PacedMailer, QuotaSpentError, pace_for
from inbox_pipeline_tests.conftest import SmtpSink
from inbox_pipeline_tests.db._races import run_race

SENDER = "kindle@news.example"
START = datetime(2026, 3, 10, 12, tzinfo=timezone.utc).timestamp()  # (slot times are floats: equal to 1e-6 s)


class VirtualClock:
    """Time for ``runs`` threads that passes only while every run is asleep (or done): a sleep ends
    when the clock reaches its wake time, and the clock jumps to the earliest wake time once no run
    is awake. So each run wakes exactly when it asked to, in that order, however slowly the machine
    runs the threads; a run reserving, sending or waiting on a database lock holds the clock still."""

    def __init__(self, start: float, runs: int):
        self.now = start
        self._awake = runs
        self._asleep: dict[object, float] = {}  # a sleeping run's token -> its wake time
        self._changed = threading.Condition()

    def time(self) -> float:
        with self._changed:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._changed:
            token = object()
            self._asleep[token] = self.now + seconds
            self._awake -= 1
            self._advance()
            if not self._changed.wait_for(lambda: token not in self._asleep, timeout=60):
                raise TimeoutError("the virtual clock stopped: a run neither slept nor finished")

    def done(self) -> None:
        with self._changed:
            self._awake -= 1
            self._advance()

    def _advance(self) -> None:
        if self._awake or not self._asleep:
            return
        self.now = max(self.now, min(self._asleep.values()))
        for token in [t for t, wake in self._asleep.items() if wake <= self.now]:
            del self._asleep[token]
            self._awake += 1
        self._changed.notify_all()


def _paced_in_virtual_time(mailer: PacedMailer, sink: SmtpSink, *runs: Callable[[], None]) -> None:
    """``runs`` at once in threads, the mailer (and the SMTP server's record) on one virtual clock."""
    clock = VirtualClock(START, len(runs))
    mailer.clock, mailer.sleep, sink.clock = clock.time, clock.sleep, clock.time
    errors: list[BaseException] = []

    def run(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            clock.done()

    threads = [threading.Thread(target=run, args=(target,)) for target in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and not any(t.is_alive() for t in threads)


def _message(to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = subject
    message.set_content("a book would be attached here")
    return message


def _pipeline(url: str, smtp_url: str, *, rate: float = 0.0, daily: int = 0) -> Pipeline:
    upgrade(url)
    return Pipeline(url, "", "", smtp_url, PipelineOptions(sender=SENDER, send_rate=rate, send_daily_quota=daily))


def test_sends_reach_the_smtp_server_no_faster_than_the_rate(database_url: str, smtp_sink: SmtpSink) -> None:
    """Three runs send two emails each at once, at 5/s: the SMTP server gets them 0.2 s apart, over
    a second (unpaced: all six at once); each held back, told, and recorded."""
    pipeline = _pipeline(database_url, smtp_sink.url, rate=5)
    mailer = pipeline.mailer
    assert isinstance(mailer, PacedMailer)
    paced: list[float] = []

    def run(n: int) -> None:
        for k in range(2):
            paced.append(mailer.send(_message("reader@kindle.example", f"issue {n}.{k}")).paced_seconds)

    _paced_in_virtual_time(mailer, smtp_sink, *(partial(run, n) for n in range(3)))
    assert len(smtp_sink.messages) == 6
    assert [t - START for t in smtp_sink.times] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], abs=1e-6)
    assert max(paced) >= 0.6  # four slots are asked for at 0 s (a run sends its first at once): held back, and told
    with pipeline.sessions() as session:
        counters = pace_counters(session)
    assert (counters.sends, counters.held) == (6, 5)  # every send but the first waited for its slot
    assert counters.held_seconds == pytest.approx(sum(paced))


def test_no_rate_configured_for_smtp_sends_unpaced(database_url: str, smtp_sink: SmtpSink) -> None:
    pipeline = _pipeline(database_url, smtp_sink.url)
    assert not isinstance(pipeline.mailer, PacedMailer)
    pipeline.mailer.send(_message("reader@kindle.example", "unpaced"))
    assert len(smtp_sink.messages) == 1


def test_one_users_burst_shares_the_rate_with_another_user(database_url: str, smtp_sink: SmtpSink) -> None:
    """Four runs send a's 12 emails while one run sends b's 3, at 4/s: b gets about every other
    slot; FIFO between runs alone would give it every fifth, its last email among the last."""
    pipeline = _pipeline(database_url, smtp_sink.url, rate=4)
    mailer = pipeline.mailer
    assert isinstance(mailer, PacedMailer)

    def run(to: str, count: int) -> None:
        for n in range(count):
            mailer.send(_message(to, f"{to} {n}"))

    runs = [partial(run, "a@kindle.example", 3) for _ in range(4)]
    _paced_in_virtual_time(mailer, smtp_sink, *runs, partial(run, "b@kindle.example", 3))
    order = [m["to"][0] for m in smtp_sink.messages]
    assert len(order) == 15
    gaps = [later - earlier for earlier, later in itertools.pairwise(smtp_sink.times)]
    assert min(gaps) > 0.25 - 1e-6  # never two within 1/4 s (unpaced: all at once)
    last_b = max(i for i, to in enumerate(order) if to == "b@kindle.example")
    assert last_b <= 9, order  # about 6 when fair; 14 when b waits behind a's runs


def test_the_daily_quota_stops_sending_until_it_frees_up(database_url: str, smtp_sink: SmtpSink) -> None:
    with time_machine.travel("2026-03-10 12:00:00Z", tick=False) as traveller:
        pipeline = _pipeline(database_url, smtp_sink.url, rate=100, daily=3)
        mailer = pipeline.mailer
        assert isinstance(mailer, PacedMailer)
        mailer.sleep = traveller.shift  # waiting for a slot moves the frozen clock instead
        for n in range(3):
            mailer.send(_message("reader@kindle.example", f"issue {n}"))
        traveller.shift(3600)
        with pytest.raises(QuotaSpentError, match=r"daily send quota is spent \(3 of 3 in 24 hours\)") as caught:
            mailer.send(_message("reader@kindle.example", "one too many"))
        assert not caught.value.maybe_sent  # nothing went out: retried or held like "try later"
        assert len(smtp_sink.messages) == 3
        traveller.shift(23 * 3600)  # 24 hours after the first three
        mailer.send(_message("reader@kindle.example", "the next day"))
    assert [m["data"].count(b"the next day") for m in smtp_sink.messages][-1] == 1
    with pipeline.sessions() as session:
        assert pace_counters(session).refused == 1


def test_the_ses_account_sets_the_rate_and_quota(aws_env: str) -> None:
    from inbox_pipeline.seams.mailer import SesMailer

    mailer = SesMailer(SENDER)
    assert mailer.send_quota() == (1.0, 200)  # moto's account: 1 a second, 200 a day
    assert pace_for(mailer).rate == 1.0 and pace_for(mailer).daily == 200
    lower = pace_for(mailer, rate=0.5, daily=50)
    assert (lower.rate, lower.daily) == (0.5, 50)
    assert pace_for(mailer, rate=14).rate == 1.0  # never above the account's


def test_two_processes_share_one_rate(postgres_url: str, smtp_sink: SmtpSink) -> None:
    """Two worker processes (as two runs) each send 10 emails at a shared 10/s, all asked for at
    the same instant (each process's clock stands still): the database hands out 20 slots at
    least 0.1 s apart, and each send waited for its own (a limiter per process: two of each slot)."""
    from . import _pacing_workers

    upgrade(postgres_url)
    outcomes = run_race(_pacing_workers.send_worker, postgres_url, [(smtp_sink.url, 10, START)] * 2)
    assert len(smtp_sink.messages) == 20
    granted = sorted(w for paced, _ in outcomes.values() for w in paced)  # a slot's time, less START
    assert granted[0] == 0 and min(b - a for a, b in itertools.pairwise(granted)) > 0.1 - 1e-6  # not 2 in 0.1 s
    for paced, slept in outcomes.values():
        assert slept == [w for w in paced if w > 0]  # each send waited until its slot
    engine = make_engine(postgres_url)
    try:
        with session_factory(engine)() as session:
            counters = pace_counters(session)
        assert (counters.sends, counters.held) == (20, 19)
    finally:
        engine.dispose()


def test_an_unreadable_ses_quota_paces_at_the_configured_rate_and_is_read_again(aws_env: str, monkeypatch) -> None:
    """No ses:GetSendQuota (or SES unreachable): sending goes on at the configured rate (else 1/s,
    the sandbox's), and the quota is asked for again a minute later."""
    from inbox_pipeline.services.pacing import CachedPace
    from inbox_pipeline.seams.mailer import SesMailer

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: connection refused
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    now = [0.0]
    configured = CachedPace(SesMailer(SENDER), rate=5, daily=0, clock=lambda: now[0])
    unset = CachedPace(SesMailer(SENDER), rate=0, daily=0, clock=lambda: now[0])
    assert configured().rate == 5 and unset().rate == 1.0
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)  # SES answers again
    now[0] = 30.0
    assert configured().rate == 5  # not asked again yet
    now[0] = 61.0
    assert (configured().rate, configured().daily) == (1.0, 200)  # the account's (moto's), lower than 5
