"""Bursts through the work queue: take runs queue them, worker runs claim them one at a time, fairly;
one bad email does not stop the others."""

from __future__ import annotations


import dagster as dg

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.defs.harness import add_reader, deployment, requested_emails
from inbox_pipeline_tests.helpers import refuse_to_register

BROKEN = b'{"From": "a@b.example", "Subject": "cut off'  # an inbound-parse webhook body cut short


def requests_of(result) -> list[dg.RunRequest]:
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []


def test_a_burst_runs_in_batches_each_email_once_and_a_broken_one_fails_alone(
    monkeypatch, tmp_path, database_url, smtp_sink
) -> None:
    """One email that is not an email ends unreadable and fails nothing; one taken meanwhile by
    someone else is skipped; the rest are delivered once each."""
    with deployment(monkeypatch, tmp_path, DATABASE_URL=database_url, MAILER=smtp_sink.url, BATCH_SIZE="5") as dep:
        alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        bob = add_reader(dep, "bob@example.org", kindle="bob_k@kindle.example")
        inbox = dep.pipeline().inbox
        for n in range(1, 4):
            inbox.put(f"a{n}.eml", mails.newsletter(n, alice))
        inbox.put("a3-again.eml", mails.newsletter(3, alice))  # same Message-ID: a duplicate
        inbox.put("broken.json", BROKEN)
        for n in range(11, 13):
            inbox.put(f"b{n}.eml", mails.newsletter(n, bob))
        inbox.put("confirm.eml", mails.confirmation(bob))
        inbox.put("a0-gone.eml", mails.newsletter(13, bob))

        requests = requests_of(dep.tick())
        # 9 emails: one take run named the first 5 (BATCH_SIZE; it lists and takes the other 4 after
        # them), and one worker (one per ten emails due); nothing registered yet.
        assert [r.job_name for r in requests] == ["take_inbox", "process_inbox_batch"]
        assert requested_emails(requests[0]) == sorted(o.key for o in inbox.list_pending(20))[:5]
        assert requests[0].tags["inbox-pipeline/email-count"] == "5"
        assert len({r.run_key for r in requests}) == 2 and dep.rows() == []
        (inbox.path / "a0-gone.eml").unlink()  # named, but taken by someone else before the run starts
        root = dep.pipeline().storage.path
        blocker = root / "work"  # a file where the durable work area's folder would go
        root.mkdir(parents=True, exist_ok=True)
        blocker.write_bytes(b"")
        runs = [dep.run(r) for r in requests]
        assert requests_of(dep.tick()) == []

        # All runs end green: the email that is not an email fails nothing.
        assert [r.success for r in runs] == [True, True]
        assert not [e for r in runs for e in r.all_events if e.event_type_value == "STEP_FAILURE"]
        ids = sorted(i for r in runs for i in dep.emails_of(r))  # the worker tagged the emails it claimed
        assert ids == sorted(r[0] for r in dep.rows()) and len(ids) == 8
        (broken_id,) = [i for i, _, _, _ in dep.rows() if _storage_key(dep, i) == "broken.json"]

        # At the SMTP server: each newsletter once, the confirmation to bob's own address.
        sent = [(tuple(m["to"]), " ".join(str(p["Subject"]).split())) for m, p in zip(smtp_sink.messages, smtp_sink.parsed())]
        assert len(sent) == len(set(sent)) == 6
        assert sorted(s for (to, s) in sent if to == ("alice_k@kindle.example",)) == sorted(mails.subject(n) for n in (1, 2, 3))
        assert sorted(s for (to, s) in sent if to == ("bob_k@kindle.example",)) == sorted(mails.subject(n) for n in (11, 12))
        assert [to for (to, _) in sent].count(("bob@example.org",)) == 1

        rows = {i: (state, reason) for i, state, reason, _ in dep.rows()}
        assert sorted(state for state, _ in rows.values()) == sorted(
            ["delivered"] * 5 + ["duplicate", "confirmation_forwarded", "unreadable"]
        )
        assert rows[broken_id][0] == "unreadable" and rows[broken_id][1].startswith("not valid JSON: ")

        # A run-failure handler marking a run's emails (services.process.record_run_failure per
        # email) leaves the finished ones alone: per-email state decides, not the run's status.
        from inbox_pipeline.services.process import record_run_failure

        changed = [i for i in ids if record_run_failure(dep.pipeline(), i, "run failed")]
        assert changed == []
        assert {i: s for i, (s, _) in rows.items()} == {i: s for i, s, _, _ in dep.rows()}

        # Each email is found in the UI by its materializations: Message-ID and subject lead to the run.
        records = dep.instance.fetch_materializations(dg.AssetKey("inbox_email"), limit=50).records
        (bob_run,) = {
            r.run_id for r in records
            if getattr(r.asset_materialization.metadata.get("message_id"), "value", None) == mails.message_id(12)
        }
        assert dep.instance.get_run_by_id(bob_run).tags["dagster/run_key"] == requests[1].run_key  # the worker
        email_12 = next(i for i, _, _, subject in dep.rows() if subject == mails.subject(12))
        (record,) = [
            r for r in records if getattr(r.asset_materialization.metadata.get("message_id"), "value", None) == mails.message_id(12)
        ]
        assert record.asset_materialization.metadata["inbound_email_id"].value == email_12
        deliveries = dep.instance.fetch_materializations(dg.AssetKey("kindle_delivery"), limit=50).records
        assert len(deliveries) == 5
        # A batch's stages hand over in memory: the per-email job's work area (work/newsletter-<id>/)
        # could not be written (a file stands in its way) and storage holds the five EPUBs only.
        stored = [f.relative_to(root).parts for f in root.rglob("*") if f.is_file() and f != blocker]
        assert len(stored) == 5 and all(parts[0] == "epubs" and parts[-1].endswith(".epub") for parts in stored)
        blocker.unlink()

        # A quiet inbox: one email, one per-email run, tagged with its Message-ID.
        inbox.put("quiet.eml", mails.newsletter(21, alice))
        (quiet,) = requests_of(dep.tick())
        assert quiet.job_name == "process_email"
        result = dep.run(quiet)
        assert result.success
        run = dep.instance.get_run_by_id(result.run_id)
        assert run.tags["inbox-pipeline/message-id"] == mails.message_id(21)
        assert run.tags["inbox-pipeline/outcome"] == "sent"
        assert len(smtp_sink.messages) == 7


def _storage_key(dep, email_id: int) -> str:
    from inbox_pipeline.db.intake import get_inbound

    with dep.pipeline().sessions() as session:
        return get_inbound(session, email_id).storage_key.rsplit("/", 1)[-1]


def test_an_email_that_cannot_be_registered_fails_its_run_alone_and_is_not_requested_again_at_once(
    monkeypatch, tmp_path
) -> None:
    """A poison object the database refuses (a trigger stands in for the fault): its take run fails (the
    operator is alerted), the other emails are delivered, the object stays in the inbox, and the next
    ticks leave it alone instead of retrying it every tick."""
    with deployment(monkeypatch, tmp_path) as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox = dep.pipeline().inbox
        for n, name in enumerate(("a.eml", "b.eml", "stuck.eml")):
            inbox.put(name, mails.newsletter(n, address))
        refuse_to_register(dep.pipeline().sessions, "stuck.eml")

        take, work = requests_of(dep.tick())
        result = dep.run(take)
        assert dep.run(work).success

        assert not result.success
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert [e.step_key for e in failures] == ["take_inbox_emails"]
        assert "1 email(s) could not be taken from the inbox: 'stuck.eml'" in failures[0].event_specific_data.error_display_string
        assert sorted((_storage_key(dep, i), state) for i, state, _, _ in dep.rows()) == [
            ("a.eml", "delivered"), ("b.eml", "delivered")
        ]
        assert [o.key for o in inbox.list_pending(10)] == ["stuck.eml"]
        skipped = dep.tick()  # its run failed (and alerted): it waits a day, not a tick
        assert requests_of(skipped) == [] and "1 pending in runs already" in skipped.skip_reason.skip_message


def test_an_email_the_take_run_listed_but_could_not_take_is_left_alone_as_a_named_one_is(monkeypatch, tmp_path) -> None:
    """The tick names two (its cap); the take run lists the third itself, and the database refuses it:
    the run fails (the operator is alerted), names it in its not-taken tag, and the next ticks leave
    it in the inbox instead of starting a take run for it every tick."""
    from inbox_pipeline.defs.common import TAG_NOT_TAKEN

    with deployment(monkeypatch, tmp_path, MAX_EMAILS_PER_TICK="2") as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox = dep.pipeline().inbox
        for n, name in enumerate(("a.eml", "b.eml", "z-stuck.eml")):
            inbox.put(name, mails.newsletter(n, address))
        refuse_to_register(dep.pipeline().sessions, "z-stuck.eml")

        take, work = requests_of(dep.tick())
        assert requested_emails(take) == ["a.eml", "b.eml"]
        result = dep.run(take)
        assert dep.run(work).success

        assert not result.success
        run = dep.instance.get_run_by_id(result.run_id)
        assert run.tags[TAG_NOT_TAKEN] == '["z-stuck.eml"]'
        assert sorted((_storage_key(dep, i), state) for i, state, _, _ in dep.rows()) == [
            ("a.eml", "delivered"), ("b.eml", "delivered")
        ]
        assert [o.key for o in inbox.list_pending(10)] == ["z-stuck.eml"]
        skipped = dep.tick()  # its take run failed (and alerted): it waits a day, not a tick
        assert requests_of(skipped) == [] and "1 pending in runs already" in skipped.skip_reason.skip_message


def test_a_burst_is_sent_in_turns_by_recipient(monkeypatch, tmp_path, database_url, smtp_sink) -> None:
    """Alice's five emails and then Bob's one land in one burst: Bob's book is among the first two the
    SMTP server gets, not the sixth (the worker claims the recipient served least recently first)."""
    with deployment(monkeypatch, tmp_path, DATABASE_URL=database_url, MAILER=smtp_sink.url) as dep:
        alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        bob = add_reader(dep, "bob@example.org", kindle="bob_k@kindle.example")
        inbox = dep.pipeline().inbox
        for n in range(1, 6):
            inbox.put(f"a{n}.eml", mails.newsletter(n, alice))
        inbox.put("b.eml", mails.newsletter(11, bob))
        requests = requests_of(dep.tick())
        assert [r.job_name for r in requests] == ["take_inbox", "process_inbox_batch"]
        assert all(dep.run(r).success for r in requests)
        order = [m["to"][0] for m in smtp_sink.messages]
        assert sorted(order[:2]) == ["alice_k@kindle.example", "bob_k@kindle.example"]
        assert order[2:] == ["alice_k@kindle.example"] * 4
