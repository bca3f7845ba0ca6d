"""The deployment watchdog on the real Definitions: outages hold mail and tell the operator once.

The inbox sensor, the runs it asks for and the watchdog's ticks are the code
location's own (``harness.Deployment``), on a temporary Dagster instance; mail
goes to an aiosmtpd server, which can say "try later" (451) to every message.
Time passes with ``time-machine``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import time_machine

from inbox_pipeline.defs.alerts import WATCHDOG_SENSOR
from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.defs.harness import add_reader, deployment

OPERATOR = "ops@pipeline.example"
START = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


def arrived(sink, to: str) -> list:
    return [msg for raw, msg in zip(sink.messages, sink.parsed()) if to in raw["to"]]


def watchdog(dep):
    """One watchdog tick; the runs it asks for are executed at once (as the daemon would launch them)."""
    result = dep.tick(WATCHDOG_SENSOR)
    runs = [dep.run(r) for r in dep.requests(result)]
    message = result.skip_reason.skip_message if getattr(result, "skip_reason", None) else ""
    return message, runs


def test_the_mailer_down_during_a_burst_then_back_delivers_each_email_once_and_tells_only_the_operator(
    monkeypatch, tmp_path, database_url, smtp_sink
) -> None:
    with time_machine.travel(START, tick=True) as traveller, deployment(
        monkeypatch, tmp_path, DATABASE_URL=database_url, MAILER=smtp_sink.url, OPERATOR_EMAIL=OPERATOR
    ) as dep:
        readers = [add_reader(dep, f"r{n}@example.org", kindle=f"r{n}_k@kindle.example") for n in range(3)]
        for n in range(6):
            dep.pipeline().inbox.put(f"n{n}.eml", mails.newsletter(n, readers[n % 3]))
        smtp_sink.refuse_next = 10_000  # the mail server says "try later" to everything
        runs = dep.drain()
        assert runs and all(r.success for r in runs)  # our outage fails no run ...
        assert [state for _, state, _, _ in dep.rows()] == ["waiting"] * 6  # ... and loses no email

        _, resumed = watchdog(dep)  # still down: the resumed emails wait again, the alert is kept
        assert len(resumed) == 1 and resumed[0].success
        assert [state for _, state, _, _ in dep.rows()] == ["waiting"] * 6
        message, resumed = watchdog(dep)  # too soon to resume again: nothing launched
        assert not resumed and "mailer: 6 email(s) wait for the mailer" in message

        smtp_sink.refuse_next = 0  # the mail server is back
        traveller.shift(timedelta(minutes=3))
        _, resumed = watchdog(dep)
        assert len(resumed) == 1 and resumed[0].success
        assert [state for _, state, _, _ in dep.rows()] == ["delivered"] * 6
        for _ in range(3):
            traveller.shift(timedelta(minutes=3))
            message, _ = watchdog(dep)
        assert message == "healthy"

        for n in range(3):
            assert len(arrived(smtp_sink, f"r{n}_k@kindle.example")) == 2  # each newsletter exactly once
            assert not arrived(smtp_sink, f"r{n}@example.org")  # no user notice at all
        assert not dep.notifications()
        subjects = [m["Subject"] for m in arrived(smtp_sink, OPERATOR)]
        assert subjects == ["[inbox-pipeline] problem: the mailer", "[inbox-pipeline] recovered: the mailer"]


def test_an_unreadable_inbox_alerts_once_then_recovers(monkeypatch, tmp_path, smtp_sink) -> None:
    import shutil

    with deployment(monkeypatch, tmp_path, MAILER=smtp_sink.url, OPERATOR_EMAIL=OPERATOR) as dep:
        inbox = dep.data_dir / "inbox"
        assert watchdog(dep)[0] == "healthy"
        shutil.rmtree(inbox, ignore_errors=True)
        inbox.write_text("not a folder")  # the mount went wrong
        for _ in range(3):
            message, _ = watchdog(dep)
            assert "inbox: the inbox" in message and "cannot be read" in message
        inbox.unlink()
        inbox.mkdir()
        assert watchdog(dep)[0] == "healthy"
        assert watchdog(dep)[0] == "healthy"
        alerts = arrived(smtp_sink, OPERATOR)
        assert [m["Subject"] for m in alerts] == [
            "[inbox-pipeline] problem: the inbox",
            "[inbox-pipeline] recovered: the inbox",
        ]
        assert "NotADirectoryError" in alerts[0].get_body(("plain",)).get_content()


def test_epubcheck_without_java_holds_mail_shows_at_the_first_tick_and_resumes_once_java_is_back(
    monkeypatch, tmp_path, smtp_sink, java_available
) -> None:
    import os

    with deployment(monkeypatch, tmp_path, MAILER=smtp_sink.url, OPERATOR_EMAIL=OPERATOR, EPUBCHECK="true") as dep:
        gil = add_reader(dep, "gil@example.org", kindle="gil_k@kindle.example")
        path = os.environ["PATH"]
        monkeypatch.setenv("PATH", str(tmp_path / "no-java-here"))
        message, _ = watchdog(dep)
        assert "EPUBCheck is enabled (INBOX_PIPELINE_EPUBCHECK) but cannot run: no Java runtime" in message
        dep.pipeline().inbox.put("g.eml", mails.newsletter(7, gil))
        (run,) = dep.drain()
        assert run.success
        ((_, state, reason, _),) = dep.rows()
        assert state == "waiting" and reason.startswith("waiting for EPUBCheck:")
        assert watchdog(dep)[1] == []  # Java still missing: nothing resumed

        monkeypatch.setenv("PATH", path)
        _, resumed = watchdog(dep)
        assert len(resumed) == 1 and resumed[0].success
        assert [state for _, state, _, _ in dep.rows()] == ["delivered"]
        assert len(arrived(smtp_sink, "gil_k@kindle.example")) == 1
        assert not arrived(smtp_sink, "gil@example.org") and not dep.notifications()
        assert [m["Subject"] for m in arrived(smtp_sink, OPERATOR)] == ["[inbox-pipeline] problem: EPUBCheck"]


def test_an_unusable_mailer_uri_is_reported_at_the_first_tick_blames_no_email_and_the_fix_resumes_it(
    monkeypatch, tmp_path, smtp_sink
) -> None:
    with deployment(monkeypatch, tmp_path, MAILER="pigeon://loft") as dep:
        hal = add_reader(dep, "hal@example.org", kindle="hal_k@kindle.example")
        message, _ = watchdog(dep)
        assert "mailer: the mailer cannot work as configured" in message and "INBOX_PIPELINE_MAILER" in message
        dep.pipeline().inbox.put("h.eml", mails.newsletter(8, hal))
        (run,) = dep.drain()
        assert run.success
        ((_, state, reason, _),) = dep.rows()
        assert state == "waiting" and reason.startswith("waiting for a configuration fix:")
        assert not dep.notifications()

        monkeypatch.setenv("INBOX_PIPELINE_MAILER", smtp_sink.url)  # the operator fixes the setting
        _, resumed = watchdog(dep)
        assert len(resumed) == 1 and resumed[0].success
        assert [state for _, state, _, _ in dep.rows()] == ["delivered"]
        assert [to for m in smtp_sink.messages for to in m["to"]] == ["hal_k@kindle.example"]
        assert watchdog(dep)[0] == "healthy"
