"""The inbox sensor (new emails -> runs) and the run-failure sensor (a crashed run -> a recorded failure)."""

import dagster as dg

from inbox_pipeline.defs.email.ops import TAG_EMAIL_ID, TAG_INBOX_KEY
from inbox_pipeline.defs.resources import PipelineResource

INBOX_SENSOR = "inbox_sensor"
RUN_FAILURE_SENSOR = "email_run_failure_sensor"


def run_request_for(registered) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=registered.run_key,
        run_config={
            "ops": {
                "parse_email": {
                    "config": {"inbound_email_id": registered.email_id, "storage_key": registered.storage_key}
                }
            }
        },
        tags={TAG_EMAIL_ID: str(registered.email_id), TAG_INBOX_KEY: registered.storage_key},
    )


def build_inbox_sensor(
    job: dg.JobDefinition,
    *,
    interval_seconds: int = 30,
    max_emails_per_tick: int = 200,
    relaunch_after_seconds: float = 120,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=INBOX_SENSOR,
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Watches the inbox (S3 prefix or folder). Each tick takes up to "
            f"{max_emails_per_tick} pending emails, registers each once in the database, moves it to the archive "
            "and launches one run per email (run key = the registration, so a restart never runs one twice). "
            "Its cost follows the new emails only; the rest wait for the next tick. Registered emails whose run "
            f"never started after {relaunch_after_seconds:g} s are requested again."
        ),
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        from datetime import timedelta

        from inbox_pipeline.services.intake import take_new_emails, unlaunched

        p = pipeline.pipeline()
        tick = take_new_emails(p, limit=max_emails_per_tick)  # a listing error fails the tick: nothing is lost
        requests = [run_request_for(r) for r in tick.registered]
        if tick.error:
            context.log.error(f"intake stopped after {len(tick.registered)} email(s); the rest wait: {tick.error}")
        taken = {r.email_id for r in tick.registered}
        stale = unlaunched(p, older_than=timedelta(seconds=relaunch_after_seconds), limit=max_emails_per_tick)
        recovered = [r for r in stale if r.email_id not in taken]
        requests += [run_request_for(r) for r in recovered]
        if recovered:
            context.log.info(f"requesting {len(recovered)} registered email(s) again (Dagster skips known run keys)")
        if not requests:
            return dg.SensorResult(skip_reason=f"no new email in {p.inbox.uri}")
        context.log.info(
            f"{len(tick.registered)} new email(s) of {tick.listed} listed, {len(recovered)} re-requested"
        )
        return dg.SensorResult(run_requests=requests)

    return inbox_sensor


def build_run_failure_sensor(job: dg.JobDefinition) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        monitored_jobs=[job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "When a per-email run fails in a way its ops could not record (the worker crashed or was "
            "terminated), marks the email failed with the run's error, so no email waits in a half state."
        ),
    )
    def email_run_failure_sensor(context: dg.RunFailureSensorContext, pipeline: PipelineResource) -> None:
        from inbox_pipeline.services.process import record_run_failure

        email_id = context.dagster_run.tags.get(TAG_EMAIL_ID)
        if not email_id:
            return
        message = context.failure_event.message or "the run failed"
        record_run_failure(pipeline.pipeline(), int(email_id), f"run {context.dagster_run.run_id} failed: {message}")

    return email_run_failure_sensor


def _setting(settings, name: str, default: str, environ=None) -> float:
    """``Settings.<name>`` when it exists, else ``INBOX_PIPELINE_<NAME>`` from the environment."""
    import os

    value = getattr(settings, name, None)
    if value is None:
        env = os.environ if environ is None else environ
        value = (env.get("INBOX_PIPELINE_" + name.upper()) or default).strip()
    return float(value)


def sensor_interval_seconds(settings, environ=None) -> int:
    """How often the inbox is looked at: INBOX_PIPELINE_SENSOR_INTERVAL_SECONDS, default 30."""
    return max(1, int(_setting(settings, "sensor_interval_seconds", "30", environ)))


def relaunch_after_seconds(settings, environ=None) -> float:
    """A registered email with no run after this long is requested again:
    INBOX_PIPELINE_RELAUNCH_AFTER_SECONDS, default 120."""
    return max(0.0, _setting(settings, "relaunch_after_seconds", "120", environ))
