"""The run-failure sensor and the notification retry sensor.

A failed run is told once Dagster has given up on it: ``will_be_retried``
reads the run-retry decision Dagster stores on the run with its failure
(``dagster/will_retry``), so a run that is still going to be retried is
skipped and its retry is judged when it fails in turn.

The operator alert is claimed on the run itself (tag ``inbox-pipeline/operator-alert``:
``pending`` -> ``sent`` | ``logged`` (no operator address) | ``retry`` (the mailer
said try later) | ``failed``), so each failed run alerts once, and the alert can
be found from the run in the UI. A re-execution inherits its parent's tags, so
the state counts only when ``inbox-pipeline/operator-alert-run`` names the run
itself: a re-execution that fails again alerts again. A re-execution that
succeeds closes its ancestors' episode (``resolved``) and tells the operator so.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from inbox_pipeline.defs.common import BATCH_JOB, MAX_RETRIES, PARENT_RUN_TAG, WILL_RETRY_TAG, email_ids_of_run
from inbox_pipeline.defs.resources import PipelineResource

RUN_FAILURE_SENSOR = "email_run_failure_sensor"
NOTIFICATION_RETRY_SENSOR = "notification_retry_sensor"
TAG_OPERATOR_ALERT = "inbox-pipeline/operator-alert"
TAG_OPERATOR_ALERT_DETAIL = "inbox-pipeline/operator-alert-detail"
TAG_OPERATOR_ALERT_RUN = "inbox-pipeline/operator-alert-run"  # the run the alert state is about
TAG_RESOLVED_BY = "inbox-pipeline/resolved-by"  # the re-execution that succeeded after this run's alert
RUN_SUCCESS_SENSOR = "email_run_success_sensor"
_TOLD = ("pending", "sent", "logged", "failed")  # operator-alert states that are not sent again


def will_be_retried(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """True when Dagster's run-retry daemon will re-execute this failed run.

    Run retries come from dagster.yaml ``run_retries`` (``max_retries``, ``retry_on_asset_or_op_failure``)
    or the run's ``dagster/max_retries`` / ``dagster/retry_on_asset_or_op_failure`` tags. When run
    retries are enabled, the instance stores its decision as the run tag ``dagster/will_retry`` as it
    stores the run's failure, before any sensor can see that failure, and the daemon acts on that tag.
    A failed run without the tag (its failure stored by a Dagster older than the tag) counts as not
    retried, so it is told: a notice too many is deferred and withdrawn if the email is delivered
    meanwhile, while a failure never told would stay silent.
    """
    if not instance.run_retries_enabled or run.status != dg.DagsterRunStatus.FAILURE:
        return False  # no daemon retries anything
    return (run.tags.get(WILL_RETRY_TAG) or "").strip().lower() == "true"


def failure_reason(instance: dg.DagsterInstance, run_id: str) -> str:
    """What a person should read about why a run failed: the failed steps' errors, else the run's."""
    steps: list[str] = []
    run_message = ""
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.RUN_FAILURE:
            run_message = event.message or entry.user_message or ""
            continue
        data = event.step_failure_data
        text = ""
        if data is not None and data.user_failure_data is not None and data.user_failure_data.description:
            text = data.user_failure_data.description
        elif data is not None and data.error is not None:
            error = data.error
            while error.cause is not None:  # Dagster wraps the op's own exception: report that one
                error = error.cause
            text = error.message.strip()
        line = f"{event.step_key}: {' '.join(text.split()) or 'failed'}"
        if line not in steps:
            steps.append(line)
    if steps:
        return "; ".join(steps[-3:])[:1500]
    return " ".join(run_message.split())[:1500] or "the run failed"


def tell_failed_run(instance: dg.DagsterInstance, run: dg.DagsterRun, pipeline, log) -> tuple[list, str]:
    """Record the run's emails as failed, tell their users once, alert the operator
    (``pipeline.options.operator_email``) once.

    Returns (the emails, the operator alert's state).
    """
    from inbox_pipeline.services.alerts import operator_alert, record_failed_run

    reason = failure_reason(instance, run.run_id)
    email_ids = email_ids_of_run(run)
    if run.job_name == BATCH_JOB:
        # A worker run's claims still held go back in the queue for another worker (an email out of
        # attempts is failed instead); the emails it finished keep their state, failed ones are told.
        from inbox_pipeline.services.work import release_claims

        released = release_claims(pipeline, run.root_run_id or run.run_id, max_attempts=MAX_RETRIES + 1)
        email_ids = [i for i in email_ids if i not in released.queued]
        email_ids += [i for i in released.exhausted if i not in email_ids]  # claimed but not tagged yet
        if released.queued:
            log.info(f"{len(released.queued)} email(s) the run had claimed are back in the queue")
    emails = record_failed_run(pipeline, email_ids, f"run {run.run_id} failed: {reason}")
    for e in emails:
        recorded = "recorded now" if e.marked else "already recorded"
        log.info(f"email #{e.email_id} {e.state} ({recorded}); user notice: {e.told}")
    subject, body = operator_alert(job_name=run.job_name, run_id=run.run_id, reason=reason, emails=emails)
    return emails, _alert_operator(instance, run, pipeline, log, subject, body)


def _alert_operator(instance, run, pipeline, log, subject: str, body: str) -> str:
    from inbox_pipeline.seams.mailer import TransientMailError
    from inbox_pipeline.services.alerts import OPERATOR_EMAIL_VARIABLE, send_operator_alert

    current = alert_state(instance.get_run_by_id(run.run_id) or run)
    if current in _TOLD:
        return current
    operator = pipeline.options.operator_email
    if not operator:
        log.error(f"{subject} (no {OPERATOR_EMAIL_VARIABLE}: alert recorded on the run only)\n{body}")
        _mark(
            instance, run, "logged", f"no {OPERATOR_EMAIL_VARIABLE} set",
            f"no {OPERATOR_EMAIL_VARIABLE} set: the operator alert is recorded here only.\n{body}",
        )
        return "logged"
    _mark(instance, run, "pending", f"sending to {operator}")
    try:
        send_operator_alert(pipeline, operator, subject, body)
    except TransientMailError as exc:
        state = "failed" if exc.maybe_sent else "retry"  # maybe sent: never twice
        log.warning(f"operator alert to {operator}: {exc} ({state})")
        _mark(instance, run, state, str(exc), f"operator alert to {operator} not sent yet: {exc}")
        return state
    except Exception as exc:  # noqa: BLE001 - recorded on the run; the log keeps the alert
        log.error(f"operator alert to {operator} refused: {exc}\n{body}")
        _mark(instance, run, "failed", str(exc), f"operator alert to {operator} refused: {exc}")
        return "failed"
    _mark(instance, run, "sent", f"sent to {operator}", f"operator alerted at {operator}")
    return "sent"


def alert_state(run: dg.DagsterRun) -> str | None:
    """The operator alert's state for this run; None when its tags are inherited from a parent run."""
    if run.tags.get(TAG_OPERATOR_ALERT_RUN) != run.run_id:
        return None
    return run.tags.get(TAG_OPERATOR_ALERT)


def _mark(instance, run, state: str, detail: str, event: str | None = None) -> None:
    detail = " ".join(detail.split())[:200]
    instance.add_run_tags(
        run.run_id,
        {TAG_OPERATOR_ALERT: state, TAG_OPERATOR_ALERT_DETAIL: detail, TAG_OPERATOR_ALERT_RUN: run.run_id},
    )
    if event:
        instance.report_engine_event(f"inbox-pipeline: {event}", dagster_run=run)


def build_run_failure_sensor(jobs: Sequence[dg.JobDefinition]) -> dg.SensorDefinition:
    """The run-failure sensor for ``jobs`` (the per-email job, a batch job, the digest job); the operator
    is the pipeline's ``options.operator_email``."""
    names = ", ".join(j.name for j in jobs)

    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        monitored_jobs=list(jobs),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"When a run of {names} fails and Dagster will not retry it (run retries from dagster.yaml, "
            "the run's dagster/will_retry tag): marks its emails failed with the run's error if its ops "
            "could not (a crashed worker), tells each user once that the newsletter was not delivered "
            "(delivery_failed; not when it may have reached the Kindle) and alerts the operator once "
            "(INBOX_PIPELINE_OPERATOR_EMAIL; without it the alert is logged and recorded on the run). "
            "Runs still to be retried are skipped until their last retry fails."
        ),
    )
    def email_run_failure_sensor(context: dg.RunFailureSensorContext, pipeline: PipelineResource):
        run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
        if will_be_retried(context.instance, run):
            return dg.SkipReason(f"run {run.run_id} failed and Dagster will retry it: told when its last retry fails")
        emails, alert = tell_failed_run(context.instance, run, pipeline.pipeline(), context.log)
        context.log.info(f"run {run.run_id}: {len(emails)} email(s) told, operator alert {alert}")
        return None

    return email_run_failure_sensor


def build_notification_retry_sensor(*, interval_seconds: int = 300) -> dg.SensorDefinition:
    """A sensor that sends again the user notices and operator alerts whose last send said "try later"."""

    @dg.sensor(
        name=NOTIFICATION_RETRY_SENSOR,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Every few minutes, sends the users' deferred notices that are due (delivery failed, after a grace "
            "for the operator to re-execute) and again the notifications (no Kindle, quota reached, "
            "confirmation, delivery failed) and the operator alerts of failed runs whose last attempt got "
            "\"try later\" from the mail server, each claimed first so none goes out twice and each re-checked: "
            "one that is no longer true (delivered since) is withdrawn, never sent. Notices that may "
            "already have gone out are never resent; they are counted here. Also ends `kindle verify` checks "
            "with no notice from Amazon within the hour as unconfirmed. Launches no runs."
        ),
    )
    def notification_retry_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        from inbox_pipeline.services.kindle_check import settle_kindle_checks
        from inbox_pipeline.services.notify import resend_failed_notifications

        p = pipeline.pipeline()
        resent = resend_failed_notifications(p)
        unconfirmed = settle_kindle_checks(p)
        if unconfirmed:
            context.log.info(f"{unconfirmed} Kindle check(s) unconfirmed: no notice from Amazon within the window")
        for notification_id in resent.withdrawn:
            context.log.info(f"notification #{notification_id} withdrawn: no longer true, not sent")
        for notification_id, why in resent.failed:
            context.log.warning(f"notification #{notification_id} still not sent: {why}")
        alerts = []
        for run in context.instance.get_runs(filters=dg.RunsFilter(tags={TAG_OPERATOR_ALERT: "retry"}), limit=20):
            if run.status != dg.DagsterRunStatus.FAILURE or alert_state(run) != "retry":
                continue  # a re-execution showing its parent's tag
            _, state = tell_failed_run(context.instance, run, p, context.log)
            alerts.append(state)
        summary = (
            f"notifications: {len(resent.sent)} sent, {len(resent.withdrawn)} withdrawn (no longer true), "
            f"{len(resent.failed)} still failing, "
            f"{resent.unconfirmed} unconfirmed (not resent); operator alerts: {alerts.count('sent')} sent again, "
            f"{len(alerts) - alerts.count('sent')} still waiting"
        )
        if resent.sent or resent.failed or resent.withdrawn or alerts:
            context.log.info(summary)
        return dg.SkipReason(summary)

    return notification_retry_sensor


def ancestors(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.DagsterRun]:
    """The runs this one re-executes, nearest first (``dagster/parent_run_id`` up to the root)."""
    found: list[dg.DagsterRun] = []
    parent_id = run.parent_run_id or run.tags.get(PARENT_RUN_TAG)
    while parent_id and len(found) < 50:
        parent = instance.get_run_by_id(parent_id)
        if parent is None:
            break
        found.append(parent)
        parent_id = parent.parent_run_id or parent.tags.get(PARENT_RUN_TAG)
    return found


def close_episode(instance: dg.DagsterInstance, run: dg.DagsterRun, pipeline, log) -> list[str]:
    """A re-execution succeeded: its ancestors' alerts are closed, the operator (``pipeline.options.operator_email``)
    told once. Returns the run ids it closed (none: nothing was alerted, and the run's inherited alert tags
    are cleared)."""
    from inbox_pipeline.services.alerts import episode_resolved, send_operator_alert

    alerted = [
        r for r in ancestors(instance, run)
        if alert_state(r) in ("sent", "logged", "retry", "failed") and not r.tags.get(TAG_RESOLVED_BY)
    ]
    if not alerted:
        if run.tags.get(TAG_OPERATOR_ALERT) and alert_state(run) is None:
            _mark(instance, run, "none", "succeeded: no alert")
        return []
    subject, body = episode_resolved(
        job_name=run.job_name, run_id=run.run_id, failed_run_ids=[r.run_id for r in alerted],
        email_ids=email_ids_of_run(run),
    )
    for r in alerted:
        instance.add_run_tags(r.run_id, {TAG_RESOLVED_BY: run.run_id})
    operator = pipeline.options.operator_email
    if operator:
        try:
            send_operator_alert(pipeline, operator, subject, body)
            detail = f"resolved; operator told at {operator}"
        except Exception as exc:  # noqa: BLE001 - the run keeps the record; the log keeps the note
            log.warning(f"operator note to {operator} not sent: {exc}\n{body}")
            detail = f"resolved; operator note not sent: {exc}"
    else:
        log.info(f"{subject}\n{body}")
        detail = "resolved; no operator address: logged"
    _mark(instance, run, "resolved", detail, f"{subject}: {detail}")
    return [r.run_id for r in alerted]


def build_run_success_sensor(jobs: Sequence[dg.JobDefinition]) -> dg.SensorDefinition:
    """The sensor that closes a failure episode when a re-execution of an alerted run succeeds."""
    names = ", ".join(j.name for j in jobs)

    @dg.run_status_sensor(
        name=RUN_SUCCESS_SENSOR,
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=list(jobs),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"When a re-execution of {names} succeeds after its parent run alerted the operator: marks the "
            "failed runs resolved (tag inbox-pipeline/resolved-by) and tells the operator once that the "
            "episode is over. A successful run's inherited operator-alert tag is set to none."
        ),
    )
    def email_run_success_sensor(context: dg.RunStatusSensorContext, pipeline: PipelineResource):
        run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
        if alert_state(run) == "resolved":
            return None
        closed = close_episode(context.instance, run, pipeline.pipeline(), context.log)
        if closed:
            context.log.info(f"run {run.run_id} resolved the alerts of {', '.join(closed)}")
        return None

    return email_run_success_sensor
