"""The per-email job with real parts: inbox folder or S3, PostgreSQL/SQLite, an SMTP server, EPUBCheck.

The sensor is evaluated and the runs it requests are executed in this process
(``dg.execute_job``), with outputs persisted so runs can be re-executed.
"""

from __future__ import annotations

import io
import re
import urllib.request
import zipfile

import dagster as dg
import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.defs.harness import add_reader, deployment
from inbox_pipeline_tests.helpers import epub_text

SENDER = "kindle-delivery@pipeline.example"


def epub_attachment(message):
    parts = [p for p in message.iter_attachments() if p.get_content_type() == "application/epub+zip"]
    assert len(parts) == 1, [p.get_content_type() for p in message.iter_attachments()]
    return parts[0].get_filename(), parts[0].get_content()


def by_recipient(sink) -> dict[str, list]:
    out: dict[str, list] = {}
    for raw, msg in zip(sink.messages, sink.parsed()):
        for rcpt in raw["to"]:
            out.setdefault(rcpt, []).append(msg)
    return out


@pytest.fixture
def epubcheck_env(java_available: bool) -> dict[str, str]:
    return {"EPUBCHECK": "true"}


def test_newsletters_unknown_duplicate_confirmation_quota_no_kindle_digest(
    monkeypatch, tmp_path, database_url, smtp_sink, epubcheck_env
) -> None:
    # One run per email (INBOX_PIPELINE_BATCH_SIZE=1): each run is found by its email's tags below.
    # The same mail in batch runs: inbox_pipeline_tests/defs/test_batch.py.
    with deployment(
        monkeypatch, tmp_path, DATABASE_URL=database_url, MAILER=smtp_sink.url, BATCH_SIZE="1", **epubcheck_env
    ) as dep:
        alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        bob = add_reader(dep, "bob@example.org", kindle="bob_k@kindle.example", plan="tiny", monthly_limit=1)
        carol = add_reader(dep, "carol@example.org")
        dave = add_reader(dep, "dave@example.org", kindle="dave_k@kindle.example", delivery="daily@07")
        inbox = dep.pipeline().inbox
        inbox.put("a1.eml", mails.newsletter(1, alice))
        inbox.put("a2.eml", mails.newsletter(2, alice.upper()))  # addresses are case-insensitive
        inbox.put("a1-again.eml", mails.newsletter(1, alice))  # same Message-ID: a duplicate
        inbox.put("unknown.eml", mails.newsletter(3, "nobody-zzzz@in.example"))
        inbox.put("confirm.eml", mails.confirmation(alice.replace("@", "+tag@")))
        inbox.put("b1.eml", mails.newsletter(4, bob))
        inbox.put("b2.eml", mails.newsletter(5, bob))  # over bob's quota of 1
        inbox.put("c1.eml", mails.newsletter(6, carol))
        inbox.put("c2.eml", mails.newsletter(7, carol))
        inbox.put("d1.eml", mails.newsletter(8, dave))

        runs = dep.drain()
        assert len(runs) == 10 and all(r.success for r in runs), [r.run_id for r in runs if not r.success]

        # --- what arrived at the SMTP server, each once -----------------------------
        got = by_recipient(smtp_sink)
        assert sorted((k, len(v)) for k, v in got.items()) == [
            ("alice@example.org", 1),  # the confirmation
            ("alice_k@kindle.example", 2),
            ("bob@example.org", 1),  # quota reached
            ("bob_k@kindle.example", 1),
            ("carol@example.org", 1),  # no Kindle address, told once for two newsletters
        ]
        subjects = sorted(" ".join(str(m["Subject"]).split()) for m in got["alice_k@kindle.example"])
        assert subjects == sorted([mails.subject(1), mails.subject(2)])
        for msg in got["alice_k@kindle.example"] + got["bob_k@kindle.example"]:
            assert msg["From"] == SENDER
            name, data = epub_attachment(msg)
            assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,45}\.k-[a-z2-7]{16}\.epub", name), name
            assert msg.get_body(("plain",)).get_content().strip()
            text = epub_text(data)
            assert "Part 3 of issue" in text and "View in browser" not in text
        confirm = got["alice@example.org"][0]
        body = confirm.get_body(("plain",)).get_content()
        link = mails.CONFIRM_LINK.format(n=1)
        assert link in body and body.index(link) < body.index("Original message")
        assert not any("Tide Tables" in (m["Subject"] or "") for m in got["alice_k@kindle.example"])
        assert "quota" in got["bob@example.org"][0]["Subject"].lower()
        assert "kindle" in got["carol@example.org"][0]["Subject"].lower()

        # --- the state and reason of every email --------------------------------------
        states = sorted(state for _, state, _, _ in dep.rows())
        assert states == sorted(
            ["delivered"] * 3 + ["duplicate", "unroutable", "confirmation_forwarded", "over_quota"] + ["ready"] * 3
        )
        by_state = {}
        for _, state, reason, subject in dep.rows():
            by_state.setdefault(state, []).append((reason, subject))
        assert "nobody-zzzz@in.example" in by_state["unroutable"][0][0]
        assert "same Message-ID" in by_state["duplicate"][0][0]
        assert "alice@example.org" in by_state["confirmation_forwarded"][0][0]
        assert "quota" in by_state["over_quota"][0][0]
        ready = sorted(reason for reason, _ in by_state["ready"])
        assert sum("no Kindle address" in r for r in ready) == 2 and sum("digest" in r for r in ready) == 1
        assert all(r.startswith("sent to Kindle") for r, _ in by_state["delivered"])
        ledger = dep.deliveries()
        assert sorted(d.recipient for d in ledger) == ["alice_k@kindle.example"] * 2 + ["bob_k@kindle.example"]
        assert {d.status for d in ledger} == {"sent"} and {d.attempts for d in ledger} == {1}

        # --- what the Dagster UI shows -----------------------------------------------------
        instance = dep.instance
        for key, count in [("inbox_email", 10), ("newsletter", 7), ("cleaned_html", 6), ("epub", 6), ("kindle_delivery", 3)]:
            records = instance.fetch_materializations(dg.AssetKey(key), limit=100).records
            assert len(records) == count, key
        epub_meta = instance.fetch_materializations(dg.AssetKey("epub"), limit=1).records[0].asset_materialization.metadata
        assert {"subject", "sender", "words", "images", "bytes"} <= set(epub_meta)
        evaluations = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("epub"), "kindle_ready"), limit=50
        )
        assert len(evaluations) == 6 and all(e.status.value == "SUCCEEDED" for e in evaluations)
        message_id = mails.message_id(1)
        found = instance.get_runs(filters=dg.RunsFilter(tags={"inbox-pipeline/message-id": message_id}))
        assert len(found) == 2  # the newsletter and its duplicate
        by_user = instance.get_runs(filters=dg.RunsFilter(tags={"inbox-pipeline/user": "bob@example.org"}))
        assert len(by_user) == 2
        subject_runs = instance.get_runs(filters=dg.RunsFilter(tags={"inbox-pipeline/subject": mails.subject(6)}))
        assert len(subject_runs) == 1 and subject_runs[0].tags["inbox-pipeline/outcome"] == "no_kindle"


def test_smtp_refuses_twice_then_the_email_is_delivered_once(monkeypatch, tmp_path, postgres_url, smtp_sink) -> None:
    with deployment(monkeypatch, tmp_path, DATABASE_URL=postgres_url, MAILER=smtp_sink.url) as dep:
        alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        dep.pipeline().inbox.put("a.eml", mails.newsletter(1, alice))
        smtp_sink.refuse_next = 2
        (run,) = dep.drain()
        assert run.success
        assert smtp_sink.attempts == 3 and len(smtp_sink.messages) == 1
        retries = [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert [e.step_key for e in retries] == ["deliver_to_kindle", "deliver_to_kindle"]
        (delivery,) = dep.deliveries()
        assert (delivery.status, delivery.attempts) == ("sent", 3)
        assert [row[1] for row in dep.rows()] == ["delivered"]


class RefusingHandler:
    """An SMTP server that refuses every message for good (550)."""

    def __init__(self) -> None:
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.attempts += 1
        return "550 5.1.1 Mailbox does not exist"


@pytest.fixture
def refusing_smtp():
    from aiosmtpd.controller import Controller

    from inbox_pipeline_tests.conftest import free_port

    handler = RefusingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def test_a_permanent_refusal_fails_at_once_without_retrying(monkeypatch, tmp_path, refusing_smtp) -> None:
    handler, url = refusing_smtp
    with deployment(monkeypatch, tmp_path, MAILER=url, RETRY_DELAY_SECONDS="30") as dep:
        alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        dep.pipeline().inbox.put("a.eml", mails.newsletter(1, alice))
        (run,) = dep.drain()  # a 30 s retry delay would show here: it must not retry at all
        assert not run.success
        assert not [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        (failure,) = [e for e in run.all_events if e.event_type_value == "STEP_FAILURE"]
        assert failure.step_key == "deliver_to_kindle"
        ((_, state, reason, _),) = dep.rows()
        assert state == "failed" and "refused" in reason and "550" in reason
        (delivery,) = dep.deliveries()
        assert (delivery.status, delivery.retryable) == ("failed", False)
        (notice,) = [n for n in dep.notifications() if n.kind == "delivery_failed"]
        assert notice.status == "deferred"  # the user is told after the operator's grace, if still true
        assert handler.attempts == 1  # the EPUB once


def test_reexecuting_a_delivered_run_sends_nothing_again(monkeypatch, tmp_path, smtp_sink) -> None:
    with deployment(monkeypatch, tmp_path, MAILER=smtp_sink.url) as dep:
        alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        dep.pipeline().inbox.put("a.eml", mails.newsletter(1, alice))
        (run,) = dep.drain()
        assert run.success and len(smtp_sink.messages) == 1
        again = dep.reexecute(run.run_id, from_failure=False, step_selection=None)
        assert again.success
        assert len(smtp_sink.messages) == 1
        assert dep.instance.get_run_by_id(again.run_id).tags["inbox-pipeline/outcome"] == "already_sent"
        assert [row[1] for row in dep.rows()] == ["delivered"]


def test_the_blocking_epub_check_stops_delivery(monkeypatch, tmp_path, smtp_sink) -> None:
    with deployment(monkeypatch, tmp_path, MAILER=smtp_sink.url) as dep:
        dave = add_reader(dep, "dave@example.org", kindle="dave_k@kindle.example", delivery="daily@07")
        dep.pipeline().inbox.put("d.eml", mails.newsletter(8, dave))
        (run,) = dep.drain()
        assert run.success and not smtp_sink.messages  # held for the digest
        # The stored EPUB gets damaged; the user switches to instant delivery; the
        # operator re-executes the check and the delivery.
        epub_key = dep.instance.fetch_materializations(dg.AssetKey("epub"), limit=1).records[0].asset_materialization.metadata["storage_key"].value
        storage = dep.pipeline().storage
        storage.put(epub_key, storage.get(epub_key)[:2000])
        from inbox_pipeline.db.users import get_user, update_user

        with dep.pipeline().sessions.begin() as session:
            update_user(session, get_user(session, "dave@example.org").id, delivery="instant")
        again = dep.reexecute(run.run_id, from_failure=False, step_selection=["check_epub", "deliver_to_kindle"])
        assert not again.success
        events = {e.step_key: e.event_type_value for e in again.all_events if e.step_key}
        assert events["check_epub"] == "STEP_FAILURE"
        assert "deliver_to_kindle" not in events or events["deliver_to_kindle"] == "STEP_SKIPPED"
        assert not smtp_sink.messages
        history = dep.instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("epub"), "kindle_ready"), limit=10
        )
        assert [h.status.value for h in history][:2] == ["FAILED", "SUCCEEDED"]
        ((_, state, reason, _),) = dep.rows()
        assert state == "failed" and reason.startswith("the EPUB failed validation")


def test_too_large_for_email_sends_a_download_link_to_the_user(
    monkeypatch, tmp_path, s3_bucket, aws_env, smtp_sink
) -> None:
    with deployment(
        monkeypatch,
        tmp_path,
        INBOX=f"s3://{s3_bucket}/incoming/",
        STORAGE=f"s3://{s3_bucket}/books/",
        MAILER=smtp_sink.url,
        SIZE_BUDGET_BYTES="20000",
    ) as dep:
        alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        dep.pipeline().inbox.put("a.eml", mails.newsletter(1, alice))
        (run,) = dep.drain()
        assert run.success
        (raw,) = smtp_sink.messages
        assert raw["to"] == ["alice@example.org"]
        (msg,) = smtp_sink.parsed()
        assert not list(msg.iter_attachments())
        text = msg.get_body(("plain",)).get_content()
        link = re.search(r"(http://\S+)", text).group(1)
        assert "X-Amz-Signature" in link
        data = urllib.request.urlopen(link, timeout=10).read()
        assert zipfile.ZipFile(io.BytesIO(data)).read("mimetype") == b"application/epub+zip"
        ((_, state, reason, _),) = dep.rows()
        assert state == "delivered" and "download link sent to alice@example.org" in reason
        (delivery,) = dep.deliveries()
        assert delivery.recipient == "alice@example.org" and delivery.status == "sent"


def test_input_that_is_not_an_email_ends_unreadable_in_a_green_run(monkeypatch, tmp_path) -> None:
    """Not an email is an answer, not a fault: a terminal state with its reason, no retry, no alert."""
    with deployment(monkeypatch, tmp_path, RETRY_DELAY_SECONDS="30") as dep:
        dep.pipeline().inbox.put("junk.eml", b"\x00\x01 not an email at all \xff" * 3)
        (run,) = dep.drain()
        assert run.success
        ((_, state, reason, _),) = dep.rows()
        assert state == "unreadable"
        assert reason == "not an email: it does not start with mail headers (From, To, Subject, Date or Message-ID)"
        assert not [e for e in run.all_events if e.event_type_value in ("STEP_UP_FOR_RETRY", "STEP_FAILURE")]
        assert dep.instance.get_run_by_id(run.run_id).tags["inbox-pipeline/outcome"] == "unreadable"
        (record,) = dep.instance.fetch_materializations(dg.AssetKey("inbox_email"), limit=5).records
        assert record.asset_materialization.metadata["state"].value == "unreadable"
        assert dep.notifications() == [] and dep.deliveries() == []
