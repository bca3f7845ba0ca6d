"""The deployment watchdog: one sensor that alerts the operator once per episode and resumes held mail.

Each tick it checks the deployment (``services.health.check_deployment``: the
inbox, storage, the mailer, EPUBCheck, the configuration, held and stale mail)
and the inbox sensor's own ticks (failing, or silent past ``stall_after``),
opens an episode per new problem and closes those that are gone. The alert and
the recovery of each episode are queued in the cursor and sent in order when
the mailer takes them. Emails an outage holds (``waiting``) are resumed in a
worker run once their cause has cleared. The tick's message (in the UI) says
what is wrong now, so a configuration that cannot work shows at the first tick.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import dagster as dg

from inbox_pipeline.defs.common import BATCH_JOB, TAG_EMAIL_COUNT, batch_run_config, tick_types
from inbox_pipeline.defs.intake.sensors import INBOX_SENSOR as INBOX_SENSOR_NAME
from inbox_pipeline.defs.resources import PipelineResource

WATCHDOG_SENSOR = "deployment_watchdog"
TAG_RESUMES = "inbox-pipeline/resumes"  # a watchdog run resuming the emails one cause held
RESUME_BATCH = 100
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def inbox_sensor_problem(instance: dg.DagsterInstance, now: datetime, stall_after: timedelta) -> str | None:
    """The inbox sensor's last tick failed, or it has not ticked for ``stall_after`` while running."""
    types = tick_types()
    for state in instance.all_instigator_state(instigator_type=types.instigator_type.SENSOR):
        if state.name != INBOX_SENSOR_NAME or state.status == types.instigator_status.STOPPED:
            continue
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
        if not ticks:
            continue
        tick = ticks[0]
        if tick.status == types.tick_status.FAILURE:
            error = (tick.error.message if tick.error else "").strip().splitlines()
            return f"the inbox sensor's ticks fail: {error[-1] if error else 'no error recorded'}"
        silent = now.timestamp() - tick.timestamp
        if silent > stall_after.total_seconds():
            return f"the inbox sensor has not ticked for {int(silent // 60)} min (is the daemon running?)"
    return None


def resume_request(cause: str, waiting: list) -> dg.RunRequest:
    """A worker run for emails one cause held (it claims them first); its key is new for each hold (state_changed_at)."""

    batch = waiting[:RESUME_BATCH]
    marks = "\n".join(f"{w.email_id}@{w.since.isoformat()}" for w in batch)
    digest = hashlib.sha256(marks.encode()).hexdigest()[:20]
    return dg.RunRequest(
        run_key=f"resume:{cause}:{digest}",
        job_name=BATCH_JOB,
        run_config=batch_run_config(registered=[w.email_id for w in batch]),
        tags={TAG_RESUMES: cause, TAG_EMAIL_COUNT: str(len(batch))},
    )


def _in_flight(instance: dg.DagsterInstance, cause: str) -> bool:
    return bool(instance.get_run_ids(filters=dg.RunsFilter(tags={TAG_RESUMES: cause}, statuses=_IN_FLIGHT), limit=1))


def build_watchdog_sensor(
    batch_job: dg.JobDefinition,
    *,
    interval_seconds: int,
    stale_after: timedelta,
    stall_after: timedelta,
    resume_every: timedelta,
) -> dg.SensorDefinition:
    """The watchdog (timings from ``Settings``); ``stale_after``: mail unprocessed this long is a problem;
    ``stall_after``: an inbox sensor silent this long is; ``resume_every``: held emails are tried again at
    most this often. Alerts go to the pipeline's ``options.operator_email``."""

    @dg.sensor(
        name=WATCHDOG_SENSOR,
        job=batch_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Health of the deployment: every tick probes the inbox, storage, the mailer and EPUBCheck, checks the "
            "configuration (mailer and storage URIs), the inbox sensor's ticks (failing, or silent for "
            f"{int(stall_after.total_seconds() // 60)} min) and mail unprocessed for "
            f"{int(stale_after.total_seconds() // 60)} min. The operator (INBOX_PIPELINE_OPERATOR_EMAIL) gets one "
            "alert when a problem begins and one message when it is over. Emails our outages hold (state "
            "waiting) are resumed in a process_inbox_batch run once the cause has cleared. The tick's message "
            "says what is wrong now."
        ),
    )
    def deployment_watchdog(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        from inbox_pipeline.services.alerts import send_operator_alert
        from inbox_pipeline.services.context import utcnow
        from inbox_pipeline.services.health import INBOX, INBOX_SENSOR, Watch, check_deployment

        p = pipeline.pipeline()
        now = utcnow()
        health = check_deployment(p, now=now, stale_after=stale_after)
        problems = dict(health.problems)
        watch = Watch.from_cursor(context.cursor)
        stalled = inbox_sensor_problem(context.instance, now, stall_after)
        if stalled and (INBOX in problems or INBOX in watch.open):
            # An unreadable inbox is why its sensor fails: one episode, over once the sensor ticks again.
            problems.setdefault(INBOX, stalled)
        elif stalled:
            problems[INBOX_SENSOR] = stalled

        requests = []
        for cause in sorted({w.cause for w in health.waiting} | set(watch.resumed)):
            if _in_flight(context.instance, cause):
                problems.setdefault(cause, f"emails held for {cause} are being resumed")
                continue
            held = [w for w in health.waiting if w.cause == cause]
            if held and cause in health.usable and watch.due_for_resume(cause, now, resume_every):
                requests.append(resume_request(cause, held))
                watch.resumed[cause] = now.isoformat()
        watch.update(problems, now)

        operator = p.options.operator_email
        while watch.unsent:
            subject, body = watch.unsent[0]
            if not operator:
                context.log.error(f"{subject} (no INBOX_PIPELINE_OPERATOR_EMAIL: logged only)\n{body}")
            else:
                try:
                    send_operator_alert(p, operator, subject, body)
                except Exception as exc:  # noqa: BLE001 - kept in the cursor and sent when the mailer takes it
                    context.log.warning(f"operator alert not sent yet ({exc}): {subject}")
                    break
                context.log.info(f"operator told: {subject}")
            watch.unsent.pop(0)

        summary = "; ".join(f"{k}: {v}" for k, v in sorted(problems.items())) or "healthy"
        if requests:
            context.log.info(f"{summary}; resuming held emails in {len(requests)} run(s)")
        return dg.SensorResult(run_requests=requests, cursor=watch.to_cursor(), skip_reason=None if requests else summary)

    return deployment_watchdog
