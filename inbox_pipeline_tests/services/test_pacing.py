"""Paced sending end to end: real SMTP server, real databases, real processes sharing one rate."""

from __future__ import annotations

import multiprocessing
import threading
import time
from email.message import EmailMessage

import pytest
import time_machine

from inbox_pipeline.db.engine import make_engine, session_factory, upgrade
from inbox_pipeline.db.pace import pace_counters
from inbox_pipeline.services.context import Pipeline, PipelineOptions, dispose_engines
from inbox_pipeline.services.pacing import PacedMailer, QuotaSpentError, pace_for
from inbox_pipeline_tests.conftest import SmtpSink

SENDER = "kindle@news.example"


class TimedSink(SmtpSink):
    """The SMTP server, also noting when it accepted each message (monotonic seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        reply = await super().handle_DATA(server, session, envelope)
        self.times.append(time.monotonic())
        return reply


@pytest.fixture
def timed_sink():
    sink = TimedSink()
    sink.controller.start()
    try:
        yield sink
    finally:
        sink.controller.stop()


def _never_faster(times: list[float], interval: float, jitter: float = 0.1) -> bool:
    """No stretch of accepts came faster than the rate allows (an SMTP conversation's own jitter,
    one send's, allowed once)."""
    return all(times[j] - times[i] >= (j - i) * interval - jitter for i in range(len(times)) for j in range(i + 1, len(times)))


def _message(to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = subject
    message.set_content("a book would be attached here")
    return message


def _pipeline(url: str, smtp_url: str, *, rate: float = 0.0, daily: int = 0) -> Pipeline:
    upgrade(url)
    return Pipeline(url, "", "", smtp_url, PipelineOptions(sender=SENDER, send_rate=rate, send_daily_quota=daily))


def test_sends_reach_the_smtp_server_no_faster_than_the_rate(database_url: str, timed_sink: TimedSink) -> None:
    pipeline = _pipeline(database_url, timed_sink.url, rate=5)
    assert isinstance(pipeline.mailer, PacedMailer)
    started = time.monotonic()
    paced = [pipeline.mailer.send(_message("reader@kindle.example", f"issue {n}")).paced_seconds for n in range(6)]
    took = time.monotonic() - started
    assert len(timed_sink.messages) == 6
    assert took >= 5 * 0.2 - 0.02  # six sends at 5/s: the last one 1 s after the first
    assert _never_faster(timed_sink.times[1:], 0.2)  # the first also opens the process's first connection
    assert paced[0] == pytest.approx(0.0, abs=0.05) and max(paced) > 0  # held back, and recorded
    with pipeline.sessions() as session:
        counters = pace_counters(session)
    assert counters.sends == 6 and counters.held >= 4 and counters.held_seconds > 0.5


def test_no_rate_configured_for_smtp_sends_unpaced(database_url: str, timed_sink: TimedSink) -> None:
    pipeline = _pipeline(database_url, timed_sink.url)
    assert not isinstance(pipeline.mailer, PacedMailer)
    pipeline.mailer.send(_message("reader@kindle.example", "unpaced"))
    assert len(timed_sink.messages) == 1


def test_one_users_burst_shares_the_rate_with_another_user(database_url: str, timed_sink: TimedSink) -> None:
    """Four runs send a's 20 emails while one run sends b's 5: b gets about every other slot
    (FIFO between runs alone would give it every fifth, so its last email would come last)."""
    pipeline = _pipeline(database_url, timed_sink.url, rate=10)
    mailer = pipeline.mailer

    def run(to: str, count: int) -> None:
        for n in range(count):
            mailer.send(_message(to, f"{to} {n}"))

    runs = [threading.Thread(target=run, args=("a@kindle.example", 5)) for _ in range(4)]
    runs.append(threading.Thread(target=run, args=("b@kindle.example", 5)))
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    order = [m["to"][0] for m in timed_sink.messages]
    assert len(order) == 25
    last_b = max(i for i, to in enumerate(order) if to == "b@kindle.example")
    assert last_b <= 15, order  # about 10 when fair; 24 when b waits behind a's runs


def test_the_daily_quota_stops_sending_until_it_frees_up(database_url: str, timed_sink: TimedSink) -> None:
    with time_machine.travel("2026-03-10 12:00:00Z", tick=False) as traveller:
        pipeline = _pipeline(database_url, timed_sink.url, rate=100, daily=3)
        mailer = pipeline.mailer
        assert isinstance(mailer, PacedMailer)
        mailer.sleep = traveller.shift  # waiting for a slot moves the frozen clock instead
        for n in range(3):
            mailer.send(_message("reader@kindle.example", f"issue {n}"))
        traveller.shift(3600)
        with pytest.raises(QuotaSpentError, match=r"daily send quota is spent \(3 of 3 in 24 hours\)") as caught:
            mailer.send(_message("reader@kindle.example", "one too many"))
        assert not caught.value.maybe_sent  # nothing went out: retried or held like "try later"
        assert len(timed_sink.messages) == 3
        traveller.shift(23 * 3600)  # 24 hours after the first three
        mailer.send(_message("reader@kindle.example", "the next day"))
    assert [m["data"].count(b"the next day") for m in timed_sink.messages][-1] == 1
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


def test_two_processes_share_one_rate(postgres_url: str, timed_sink: TimedSink) -> None:
    """Two worker processes (as two runs) send 10 emails each at a shared 10/s: the SMTP server sees
    20 messages over about 2 s, never many more than 10 in any second (unpaced: all 20 in one)."""
    from . import _pacing_workers

    upgrade(postgres_url)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_pacing_workers.send_worker, args=(postgres_url, timed_sink.url, start, results, i, 10))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert not any(isinstance(o, str) for o in outcomes.values()), outcomes
    assert len(timed_sink.messages) == 20
    # what a provider counts, with room for SMTP conversations' jitter on a busy machine
    times = timed_sink.times
    assert times[-1] - times[0] >= 1.4  # 19 intervals of 0.1 s
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= 14
    # both processes were held back (they share the rate); the row counts every send
    assert all(max(paced) > 0.1 for paced in outcomes.values())
    engine = make_engine(postgres_url)
    try:
        with session_factory(engine)() as session:
            assert pace_counters(session).sends == 20
    finally:
        engine.dispose()
        dispose_engines()
