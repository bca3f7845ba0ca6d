"""Paced sending end to end: real SMTP server, real databases, real processes sharing one rate."""

from __future__ import annotations

import threading
import time
from email.message import EmailMessage

import pytest
import time_machine

from inbox_pipeline.db.engine import make_engine, session_factory, upgrade
from inbox_pipeline.db.pace import pace_counters
from inbox_pipeline.services.context import Pipeline, PipelineOptions
from inbox_pipeline.services.pacing import PacedMailer, QuotaSpentError, pace_for
from inbox_pipeline_tests.conftest import SmtpSink
from inbox_pipeline_tests.db.test_races import _run

SENDER = "kindle@news.example"


def _most_within(times: list[float], seconds: float) -> int:
    """The most accepts the SMTP server saw within any ``seconds``: what a provider's rate counts."""
    return max(sum(1 for t in times if start <= t < start + seconds) for start in times)


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
    """Three runs send two emails each at once, at 5/s: spread over a second, held back, recorded."""
    pipeline = _pipeline(database_url, smtp_sink.url, rate=5)
    mailer = pipeline.mailer
    assert isinstance(mailer, PacedMailer)
    paced: list[float] = []

    def run(n: int) -> None:
        for k in range(2):
            paced.append(mailer.send(_message("reader@kindle.example", f"issue {n}.{k}")).paced_seconds)

    started = time.monotonic()
    runs = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    took = time.monotonic() - started
    assert len(smtp_sink.messages) == 6
    assert took >= 5 * 0.2 - 0.02  # six sends at 5/s: the last one 1 s after the first
    assert _most_within(smtp_sink.times, 0.5) <= 4  # 3 slots in any half second (+ one late waker); unpaced: 6
    assert max(paced) >= 0.2  # held back, and told
    with pipeline.sessions() as session:
        counters = pace_counters(session)
    assert counters.sends == 6 and counters.held >= 2 and counters.held_seconds >= max(paced)


def test_no_rate_configured_for_smtp_sends_unpaced(database_url: str, smtp_sink: SmtpSink) -> None:
    pipeline = _pipeline(database_url, smtp_sink.url)
    assert not isinstance(pipeline.mailer, PacedMailer)
    pipeline.mailer.send(_message("reader@kindle.example", "unpaced"))
    assert len(smtp_sink.messages) == 1


def test_one_users_burst_shares_the_rate_with_another_user(database_url: str, smtp_sink: SmtpSink) -> None:
    """Four runs send a's 12 emails while one run sends b's 3, at 4/s (slow enough that the slots,
    not the sends, are the bottleneck): b gets about every other slot; FIFO between runs alone
    would give it every fifth, its last email among the last."""
    pipeline = _pipeline(database_url, smtp_sink.url, rate=4)
    mailer = pipeline.mailer

    def run(to: str, count: int) -> None:
        for n in range(count):
            mailer.send(_message(to, f"{to} {n}"))

    runs = [threading.Thread(target=run, args=("a@kindle.example", 3)) for _ in range(4)]
    runs.append(threading.Thread(target=run, args=("b@kindle.example", 3)))
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    order = [m["to"][0] for m in smtp_sink.messages]
    assert len(order) == 15
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
    """Two worker processes (as two runs) send 10 emails each at a shared 10/s: the SMTP server sees
    20 messages over about 2 s, never many more than 10 in any second (unpaced: all 20 in one)."""
    from . import _pacing_workers

    upgrade(postgres_url)
    outcomes = _run(_pacing_workers.send_worker, postgres_url, [(smtp_sink.url, 10)] * 2)
    assert len(smtp_sink.messages) == 20
    # what a provider counts, with room for SMTP conversations' jitter on a busy machine
    times = smtp_sink.times
    assert times[-1] - times[0] >= 1.4  # 19 intervals of 0.1 s
    assert _most_within(times, 1.0) <= 14
    # both processes were held back (they share the rate); the row counts every send
    assert all(max(paced) > 0.1 for paced in outcomes.values())
    engine = make_engine(postgres_url)
    try:
        with session_factory(engine)() as session:
            assert pace_counters(session).sends == 20
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
