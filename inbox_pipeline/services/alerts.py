"""A failed run, told: its emails recorded as failed, their users told once, the operator alerted.

Called by the run-failure sensor once Dagster has given up on a run (no retry
will follow). Plain functions over the ``Pipeline``; the Dagster side (is the
run still going to be retried, claiming the operator alert on the run's tags)
lives in ``inbox_pipeline.defs.alerts``.

The operator address is ``INBOX_PIPELINE_OPERATOR_EMAIL`` (the pipeline's
``options.operator_email``); without it alerts are only recorded (on the run)
and logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from inbox_pipeline.db.intake import get_inbound
from inbox_pipeline.db.ledger import may_have_arrived
from inbox_pipeline.db.models import InboundState
from inbox_pipeline.db.newsletters import newsletter_of_email
from inbox_pipeline.db.users import user_email as email_of_user
from inbox_pipeline.seams.mailer import build_notification_email
from inbox_pipeline.services.context import Pipeline
from inbox_pipeline.services.notify import notify_delivery_failed
from inbox_pipeline.services.process import record_run_failure

OPERATOR_EMAIL_VARIABLE = "INBOX_PIPELINE_OPERATOR_EMAIL"


@dataclass(frozen=True)
class FailedEmail:
    """One email of a failed run, after ``record_failed_run``."""

    email_id: int
    state: str
    reason: str
    subject: str
    user_email: str | None
    marked: bool  # this call recorded the failure (the run's ops could not)
    told: str  # the user notice: "sent", "already_sent", "failed", "in_flight", or why none


def record_failed_run(pipeline: Pipeline, email_ids: Iterable[int], reason: str) -> list[FailedEmail]:
    """Mark each unfinished email failed with ``reason`` and tell its user once that it was not delivered.

    An email that is finished (delivered, held for the digest, kept for a missing Kindle, stopped
    on purpose) keeps its state and nobody is told. A user is not told of a failure when the
    delivery may have reached the Kindle (the ledger could not confirm it): the operator decides.
    """
    results = []
    for email_id in email_ids:
        marked = record_run_failure(pipeline, email_id, reason)
        results.append(_tell_user(pipeline, email_id, marked))
    return results


def _tell_user(pipeline: Pipeline, email_id: int, marked: bool) -> FailedEmail:
    with pipeline.sessions() as session:
        inbound = get_inbound(session, email_id)
        state, reason = inbound.state, inbound.reason or ""
        newsletter = newsletter_of_email(session, email_id)
        user_id = newsletter.user_id if newsletter is not None else inbound.user_id
        user_email = email_of_user(session, user_id) if user_id else None
        newsletter_id = newsletter.id if newsletter is not None else None
        title = (newsletter.subject if newsletter is not None else inbound.subject) or "(no subject)"
        unconfirmed = newsletter_id is not None and may_have_arrived(session, "newsletter", newsletter_id)

    def result(told: str) -> FailedEmail:
        return FailedEmail(email_id, state, reason, title, user_email, marked, told)

    if state != InboundState.FAILED.value:
        return result(f"not told: the email is {state}")
    if not user_id:
        return result("not told: no user (the email was not routed)")
    if unconfirmed:
        return result("not told: the delivery may have reached the Kindle")
    notice = notify_delivery_failed(
        pipeline, user_id=user_id, title=title, reason=reason, newsletter_id=newsletter_id, email_id=email_id
    )
    return result(notice.status)


def operator_alert(*, job_name: str, run_id: str, reason: str, emails: list[FailedEmail]) -> tuple[str, str]:
    """(subject, body) of the operator's alert for one failed run."""
    subject = f"[inbox-pipeline] {job_name} run {run_id[:8]} failed"
    lines = [
        f"The Dagster run {run_id} of {job_name} failed and will not be retried.",
        "",
        f"Why: {reason}",
    ]
    if emails:
        lines += ["", f"Emails in this run ({len(emails)}):"]
        for e in emails:
            who = e.user_email or "no user"
            lines.append(f"- #{e.email_id} \u201c{e.subject}\u201d for {who}: {e.state}; user notice: {e.told}")
            if e.reason:
                lines.append(f"  reason: {e.reason}")
    lines += ["", "Open the run in the Dagster UI to re-execute it from the failure once the cause is fixed."]
    return subject, "\n".join(lines)


def episode_resolved(
    *, job_name: str, run_id: str, failed_run_ids: list[str], email_ids: list[int]
) -> tuple[str, str]:
    """(subject, body) of the operator's note that a re-execution succeeded after alerted failures."""
    subject = f"[inbox-pipeline] resolved: {job_name} run {run_id[:8]} succeeded"
    lines = [
        f"The Dagster run {run_id} of {job_name} re-executed the failed run(s) {', '.join(failed_run_ids)} "
        "and succeeded: that failure is over.",
    ]
    if email_ids:
        lines += ["", f"Emails: {', '.join(f'#{i}' for i in email_ids)}."]
    return subject, "\n".join(lines)


def send_operator_alert(pipeline: Pipeline, to: str, subject: str, body: str) -> str:
    """Send one alert to the operator through the configured mailer; returns the provider's id.

    Raises the mailer's ``TransientMailError`` (try later) or another error (do not retry).
    """
    message = build_notification_email(sender=pipeline.options.sender, to=to, subject=subject, body_text=body)
    return pipeline.mailer.send(message).provider_message_id
