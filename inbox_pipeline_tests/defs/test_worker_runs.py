"""Worker runs on the work queue, end to end: take runs queue a burst, worker runs claim each email, the
mail server (a real aiosmtpd) says "try later" or "never" to one of them, and a worker run that dies
holding a claim is cleaned up by the run-failure sensor. Real SQLite and PostgreSQL, real Dagster runs."""

from __future__ import annotations

from collections.abc import Iterator
from email import policy
from email.parser import BytesParser

import dagster as dg
import pytest

from inbox_pipeline.defs.common import MAX_RETRIES, TAG_EMAIL_IDS
from inbox_pipeline_tests.conftest import SmtpSink, serving
from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.defs.harness import Deployment, add_reader, deployment, inbox_batch_job


class FaultySmtp(SmtpSink):
    """The sink, answering ``faults[needle]`` replies in turn to the RCPT of an address containing
    ``needle`` or to the DATA of a message whose subject contains it; everything else accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.faults: dict[str, list[str]] = {}
        self.refused: list[tuple[str, str]] = []  # (needle, reply) as answered

    def _fault(self, text: str) -> str | None:
        for needle, replies in self.faults.items():
            if needle in text and replies:
                self.refused.append((needle, replies[0]))
                return replies.pop(0)
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        reply = self._fault(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        subject = " ".join(str(BytesParser(policy=policy.default).parsebytes(envelope.content)["Subject"]).split())
        return self._fault(subject) or await super().handle_DATA(server, session, envelope)

    def subjects(self) -> list[str]:
        return [" ".join(str(m["Subject"]).split()) for m in self.parsed()]


@pytest.fixture
def smtp() -> Iterator[FaultySmtp]:
    with serving(FaultySmtp()) as sink:
        yield sink


@pytest.fixture
def dep(monkeypatch, tmp_path, database_url, smtp) -> Iterator[Deployment]:
    with deployment(monkeypatch, tmp_path, DATABASE_URL=database_url, MAILER=smtp.url, BATCH_SIZE="5") as deployed:
        yield deployed


def queue_rows(dep: Deployment) -> dict[int, tuple[str, int, bool, str | None]]:
    """Each inbound email: (state, attempts, queued?, claimed_by)."""
    from sqlalchemy import select

    from inbox_pipeline.db.models import InboundEmail as E

    with dep.pipeline().sessions() as session:
        rows = session.execute(select(E.id, E.state, E.attempts, E.queued_at, E.claimed_by)).all()
    return {r.id: (r.state, r.attempts, r.queued_at is not None, r.claimed_by) for r in rows}


def id_of(dep: Deployment, n: int) -> int:
    return next(i for i, _, _, subject in dep.rows() if subject == mails.subject(n))


def step_failures(result: dg.ExecuteJobResult) -> list[str]:
    return [
        e.event_specific_data.error_display_string or ""
        for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    ]


def burst(dep: Deployment, alice_ns, bob_ns) -> list[dg.RunRequest]:
    """Alice's and Bob's newsletters in the inbox; the tick's requests (take runs, then workers)."""
    alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
    bob = add_reader(dep, "bob@example.org", kindle="bob_k@kindle.example")
    for n in alice_ns:
        dep.pipeline().inbox.put(f"a{n}.eml", mails.newsletter(n, alice))
    for n in bob_ns:
        dep.pipeline().inbox.put(f"b{n}.eml", mails.newsletter(n, bob))
    requests = dep.requests(dep.tick())
    assert [r.job_name for r in requests] == ["take_inbox", "process_inbox_batch"]
    return requests


def test_try_later_from_the_mail_server_requeues_one_email_and_the_same_worker_delivers_it_once(dep, smtp) -> None:
    smtp.faults[mails.subject(12)] = ["451 4.3.0 Mailbox busy, try again later"]  # Bob's second, once
    take, worker = burst(dep, (1, 2, 3), (11, 12))
    assert dep.run(take).success
    result = dep.run(worker)

    assert result.success and not step_failures(result)
    assert smtp.refused == [(mails.subject(12), "451 4.3.0 Mailbox busy, try again later")]
    # Every newsletter reached its reader's Kindle exactly once: the refused one too, on its second claim.
    assert sorted(smtp.subjects()) == sorted(mails.subject(n) for n in (1, 2, 3, 11, 12))
    to = {s: m["to"] for s, m in zip(smtp.subjects(), smtp.messages)}
    assert to[mails.subject(12)] == ["bob_k@kindle.example"] and to[mails.subject(2)] == ["alice_k@kindle.example"]
    retried = id_of(dep, 12)
    rows = queue_rows(dep)
    assert {i: (state, attempts) for i, (state, attempts, _, _) in rows.items()} == {
        i: ("delivered", 2 if i == retried else 1) for i in rows
    }
    assert not [i for i, (_, _, queued, claimer) in rows.items() if queued or claimer]  # the queue is empty
    (reason,) = [r for i, _, r, _ in dep.rows() if i == retried]
    assert reason.startswith("sent to Kindle bob_k@kindle.example")
    assert sorted(dep.emails_of(result)) == sorted(rows)  # the run names every email it worked on
    assert dep.requests(dep.tick()) == []  # nothing left for another worker


def test_a_mailbox_that_does_not_exist_fails_its_email_and_the_worker_run_which_names_it(dep, smtp) -> None:
    smtp.faults["bob_k@"] = ["550 5.1.1 <bob_k@kindle.example>: no such mailbox"]
    take, worker = burst(dep, (1, 2, 3), (11,))
    assert dep.run(take).success
    result = dep.run(worker)

    failed = id_of(dep, 11)
    assert len(smtp.refused) == 1  # permanent: not tried again
    assert sorted(smtp.subjects()) == sorted(mails.subject(n) for n in (1, 2, 3))
    rows = {i: (state, reason) for i, state, reason, _ in dep.rows()}
    state, reason = rows.pop(failed)
    assert state == "failed"
    assert "refused" in reason and "bob_k@kindle.example" in reason and "550" in reason and "no such mailbox" in reason
    assert "Traceback" not in reason
    assert {s for s, _ in rows.values()} == {"delivered"}
    assert queue_rows(dep)[failed] == ("failed", 1, False, None)  # out of the queue after one attempt

    assert not result.success
    (failure,) = step_failures(result)
    assert f"1 email(s) failed: e{failed}: " in failure and "no such mailbox" in failure
    assert dep.instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE


def dead_worker(dep: Deployment, *, exhausted: bool, tag_claims: bool) -> tuple[dg.DagsterRun, int]:
    """A worker run that claimed an email and died (its container lost): a real failed run of the
    worker job whose id holds the claim. ``exhausted``: the email had had all its attempts."""
    from sqlalchemy import update

    from inbox_pipeline.db.models import InboundEmail as E
    from inbox_pipeline.db.queue import claim_next
    from inbox_pipeline.services.context import utcnow

    take, _worker = burst(dep, (1,), (11,))  # the worker request is never started: the dead one stands in
    assert dep.run(take).success
    run = dep.instance.create_run_for_job(inbox_batch_job(), run_config={})
    with dep.pipeline().sessions.begin() as session:
        claim = claim_next(session, run.run_id, now=utcnow())
        if exhausted:
            session.execute(update(E).where(E.id == claim.email_id).values(attempts=MAX_RETRIES + 1))
    if tag_claims:  # as the worker tags its first claim at once
        dep.instance.add_run_tags(run.run_id, {TAG_EMAIL_IDS: str(claim.email_id)})
    dep.instance.report_run_failed(dep.instance.get_run_by_id(run.run_id), message="the worker's container was lost")
    return dep.instance.get_run_by_id(run.run_id), claim.email_id


def evaluate_failure_sensor(dep: Deployment, run: dg.DagsterRun) -> None:
    from inbox_pipeline.defs.alerts import RUN_FAILURE_SENSOR, build_run_failure_sensor
    from inbox_pipeline.defs.resources import build_resources

    assert run.status == dg.DagsterRunStatus.FAILURE
    (failure,) = dep.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    with dg.build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_SENSOR, dagster_event=failure.dagster_event, dagster_instance=dep.instance,
        dagster_run=run, resources=build_resources(dep.settings),
    ) as context:
        build_run_failure_sensor([inbox_batch_job()])(context.for_run_failure())


def test_a_dead_workers_claim_goes_back_in_the_queue_and_the_next_worker_delivers_it(dep, smtp) -> None:
    run, held = dead_worker(dep, exhausted=False, tag_claims=True)
    assert queue_rows(dep)[held] == ("received", 1, True, run.run_id)
    evaluate_failure_sensor(dep, run)

    assert queue_rows(dep)[held] == ("received", 1, True, None)  # back in the queue, for any worker
    (worker,) = dep.requests(dep.tick())
    assert worker.job_name == "process_inbox_batch"
    result = dep.run(worker)
    assert result.success and held in dep.emails_of(result)
    assert sorted(smtp.subjects()) == sorted(mails.subject(n) for n in (1, 11))
    assert queue_rows(dep)[held] == ("delivered", 2, False, None)
    assert dep.requests(dep.tick()) == []


@pytest.mark.parametrize("tag_claims", [
    pytest.param(True, id="claim-tagged"),
    pytest.param(False, id="claim-not-tagged-yet"),
])
def test_a_dead_workers_claim_out_of_attempts_is_failed_not_requeued(dep, smtp, tag_claims) -> None:
    run, held = dead_worker(dep, exhausted=True, tag_claims=tag_claims)
    evaluate_failure_sensor(dep, run)

    state, attempts, queued, claimer = queue_rows(dep)[held]
    assert (queued, claimer, attempts) == (False, None, MAX_RETRIES + 1)  # out of the queue
    (reason,) = [r for i, _, r, _ in dep.rows() if i == held]
    assert state == "failed", f"left {state!r} ({reason!r}), out of the queue: never worked on again"
    assert run.run_id in reason and "the worker's container was lost" in reason
    (worker,) = dep.requests(dep.tick())  # for the other email only
    dep.run(worker)
    assert [s for i, s, _, _ in dep.rows() if i == held] == ["failed"]  # not delivered later either
    (other,) = [(state, subject) for i, state, _, subject in dep.rows() if i != held]
    assert other[0] == "delivered" and smtp.subjects() == [other[1]]
