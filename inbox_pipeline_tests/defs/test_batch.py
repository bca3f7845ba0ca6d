"""Bursts in batch runs: each email its own steps, one bad email does not stop the others, restart safety."""

from __future__ import annotations

import time

import dagster as dg

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.defs.harness import add_reader, deployment, requested_emails

BROKEN = b'{"From": "a@b.example", "Subject": "cut off'  # an inbound-parse webhook body cut short


def requests_of(result) -> list[dg.RunRequest]:
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []


def test_a_burst_runs_in_batches_each_email_once_and_a_broken_one_fails_alone(
    monkeypatch, tmp_path, database_url, smtp_sink
) -> None:
    """One email whose raw copy vanished fails alone; one that is not an email ends unreadable and
    fails nothing."""
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
        inbox.put("gone.eml", mails.newsletter(13, bob))

        requests = requests_of(dep.tick())
        # 9 emails, at most 5 a run: two batch runs, every email in exactly one.
        assert [r.job_name for r in requests] == ["process_inbox_batch"] * 2
        ids = sorted(i for r in requests for i in requested_emails(r))
        assert ids == sorted(r[0] for r in dep.rows()) and len(ids) == 9
        assert [r.tags["inbox-pipeline/email-count"] for r in requests] == ["5", "4"]
        (gone_id,) = [i for i, _, _, _ in dep.rows() if _storage_key(dep, i) == "gone.eml"]
        inbox.delete_archived("gone.eml")  # lost before its run reads it: a permanent error
        assert len({r.run_key for r in requests}) == 2
        root = dep.pipeline().storage.path
        blocker = root / "work"  # a file where the durable work area's folder would go
        root.mkdir(parents=True, exist_ok=True)
        blocker.write_bytes(b"")
        runs = [dep.run(r) for r in requests]
        assert requests_of(dep.tick()) == []

        (broken_id,) = [i for i, _, _, _ in dep.rows() if _storage_key(dep, i) == "broken.json"]
        # The run holding the vanished email ends failed; the other succeeds.
        failed = [r for r, q in zip(runs, requests) if gone_id in requested_emails(q)]
        assert len(failed) == 1 and not failed[0].success
        assert [r.success for r in runs if r is not failed[0]] == [True]
        # ... and only that email's own step failed, once (a permanent error: no retries); the
        # unreadable one's step succeeded, wherever it ran.
        failures = [e for r in runs for e in r.all_events if e.event_type_value == "STEP_FAILURE"]
        assert [e.step_key for e in failures] == [f"email.prepare_email[e{gone_id}]"]
        assert not [e for e in failed[0].all_events if e.event_type_value == "STEP_RESTARTED"]
        done = {e.step_key for r in runs for e in r.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert f"email.prepare_email[e{broken_id}]" in done

        # At the SMTP server: each newsletter once, the confirmation to bob's own address.
        sent = [(tuple(m["to"]), " ".join(str(p["Subject"]).split())) for m, p in zip(smtp_sink.messages, smtp_sink.parsed())]
        assert len(sent) == len(set(sent)) == 6
        assert sorted(s for (to, s) in sent if to == ("alice_k@kindle.example",)) == sorted(mails.subject(n) for n in (1, 2, 3))
        assert sorted(s for (to, s) in sent if to == ("bob_k@kindle.example",)) == sorted(mails.subject(n) for n in (11, 12))
        assert [to for (to, _) in sent].count(("bob@example.org",)) == 1

        rows = {i: (state, reason) for i, state, reason, _ in dep.rows()}
        assert sorted(state for state, _ in rows.values()) == sorted(
            ["delivered"] * 5 + ["duplicate", "confirmation_forwarded", "unreadable", "failed"]
        )
        assert rows[broken_id][0] == "unreadable" and rows[broken_id][1].startswith("not valid JSON: ")
        assert rows[gone_id][0] == "failed" and "the raw email is missing from the archive" in rows[gone_id][1]

        # A run-failure handler marking the failed run's emails (services.process.record_run_failure
        # per email) leaves the delivered ones alone: per-email state decides, not the run's status.
        from inbox_pipeline.services.process import record_run_failure

        changed = [i for i in requested_emails(requests[runs.index(failed[0])]) if record_run_failure(dep.pipeline(), i, "run failed")]
        assert changed == []
        assert {i: s for i, (s, _) in rows.items()} == {i: s for i, s, _, _ in dep.rows()}

        # Each email is found in the UI by its materializations: Message-ID and subject lead to the run.
        records = dep.instance.fetch_materializations(dg.AssetKey("inbox_email"), limit=50).records
        (bob_run,) = {
            r.run_id for r in records
            if getattr(r.asset_materialization.metadata.get("message_id"), "value", None) == mails.message_id(12)
        }
        assert any(q.run_key == dep.instance.get_run_by_id(bob_run).tags["dagster/run_key"] for q in requests)
        steps = {e.step_key for e in dep.instance.all_logs(bob_run) if e.step_key}
        email_12 = next(i for i, _, _, subject in dep.rows() if subject == mails.subject(12))
        assert {f"email.prepare_email[e{email_12}]", f"email.deliver_email[e{email_12}]"} <= steps
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


def test_a_lost_batch_is_requested_again_with_the_same_key_and_a_queued_one_is_not(monkeypatch, tmp_path) -> None:
    """The daemon dies after archiving a burst but before launching its run: the next ticks request the
    same batch (same run key, Dagster launches it once). Emails already in a queued batch run are not
    requested again, even when they would now be grouped differently."""
    with deployment(monkeypatch, tmp_path, RELAUNCH_AFTER_SECONDS="2") as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox = dep.pipeline().inbox
        for n in range(3):
            inbox.put(f"q{n}.eml", mails.newsletter(n, address))
        (queued,) = requests_of(dep.tick())  # launched: the run waits in the queue
        from inbox_pipeline_tests.defs.harness import inbox_batch_job

        dep.instance.create_run_for_job(  # the run as the queued coordinator keeps it until it starts
            inbox_batch_job(), run_config=queued.run_config, tags={**queued.tags, "dagster/run_key": queued.run_key}
        )
        for n in range(3, 5):
            inbox.put(f"l{n}.eml", mails.newsletter(n, address))
        (lost,) = requests_of(dep.tick())  # the daemon dies before launching this one
        assert requests_of(dep.tick()) == []  # too fresh to be called lost
        time.sleep(2.5)
        (again,) = requests_of(dep.tick())
        assert again.run_key == lost.run_key and again.run_config == lost.run_config
        assert sorted(requested_emails(again)) == sorted(requested_emails(lost))
        result = dep.run(again)
        assert result.success
        states = {i: s for i, s, _, _ in dep.rows()}
        assert sorted(states[i] for i in requested_emails(lost)) == ["delivered"] * 2
        assert sorted(states[i] for i in requested_emails(queued)) == ["received"] * 3  # still queued
        assert requests_of(dep.tick()) == []
