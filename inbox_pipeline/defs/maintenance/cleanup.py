"""The cleanup job (one op calling ``services.cleanup.clean_up``) and its daily schedule."""

# No "from __future__ import annotations": Dagster reads the config and resource annotations at definition time.
from typing import TYPE_CHECKING

import dagster as dg

from inbox_pipeline.config import PREFIX
from inbox_pipeline.defs.common import in_process_job, network_retry
from inbox_pipeline.defs.run_limits import CLEANUP_RUN_SECONDS
from inbox_pipeline.defs.resources import PipelineResource

if TYPE_CHECKING:
    from inbox_pipeline.services.cleanup import RetentionPolicy

JOB_NAME = "clean_up_expired"
SCHEDULE_NAME = "cleanup_schedule"
CLEANUP_CRON_VARIABLE = PREFIX + "CLEANUP_CRON"


class CleanupIncomplete(Exception):
    """Some objects could not be deleted; their rows stay and the next cleanup tries again."""


def build_cleanup_job(policy: "RetentionPolicy", retry_delay_seconds: float = 60) -> dg.JobDefinition:
    @dg.op(
        name="remove_expired_emails_and_epubs",
        description=(
            f"Delete raw emails (inbox archive), EPUBs (storage) and their database rows once past retention, "
            f"and Dagster's own finished runs (with their event logs) and sensor/schedule ticks: "
            f"{policy.describe()} (INBOX_PIPELINE_RETENTION_DAYS, INBOX_PIPELINE_FAILED_RETENTION_DAYS). "
            "Emails still on their way and unfinished digests are kept whatever their age."
        ),
        config_schema={
            "retention_days": dg.Field(int, default_value=policy.days, description="Finished items, in days."),
            "failed_retention_days": dg.Field(
                int, default_value=policy.failed_days, description="Failed items (kept longer), in days."
            ),
        },
        out=dg.Out(dg.Nothing),
    )
    def remove_expired(context: dg.OpExecutionContext, pipeline: PipelineResource) -> None:
        from inbox_pipeline.defs.maintenance.history import purge_dagster_history
        from inbox_pipeline.services.cleanup import RetentionPolicy, clean_up
        from inbox_pipeline.services.context import utcnow

        try:
            run_policy = RetentionPolicy(context.op_config["retention_days"], context.op_config["failed_retention_days"])
        except ValueError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        now = utcnow()
        report = clean_up(pipeline.pipeline(), now=now, policy=run_policy)
        history = purge_dagster_history(context.instance, now, run_policy)
        context.log.info(
            f"removed {report.inbound_emails} inbound email(s), {report.newsletters} newsletter(s), "
            f"{report.digests} digest(s), {history.runs + history.failed_runs} Dagster run(s) with their events "
            f"and the old ticks of {history.instigators} sensor(s)/schedule(s) ({run_policy.describe()})"
        )
        if history.more_left:
            context.log.info("older Dagster runs are left past the time budget: the next cleanup goes on with them")
        context.add_output_metadata(
            {
                "retention_days": run_policy.days,
                "failed_retention_days": run_policy.failed_days,
                "inbound_emails": report.inbound_emails,
                "newsletters": report.newsletters,
                "digests": report.digests,
                "deliveries": report.deliveries,
                "notifications": report.notifications,
                "raw_objects": report.raw_objects,
                "epub_objects": report.epub_objects,
                "dagster_runs": history.runs,
                "dagster_failed_runs": history.failed_runs,
                "errors": len(report.errors) + len(history.errors),
            }
        )
        errors = report.errors + history.errors
        if errors:
            for error in errors[:20]:
                context.log.warning(error)
            raise CleanupIncomplete(f"{len(errors)} item(s) could not be removed; first: {errors[0]}")

    @in_process_job(
        JOB_NAME,
        (
            "Retention: remove raw emails and EPUBs past their retention from storage and the database, and "
            "Dagster's old runs, event logs and ticks; failed ones are kept longer for inspection. Launched daily by the cleanup schedule; safe to run any time."
        ),
        CLEANUP_RUN_SECONDS,
        sends_mail=False,
    )
    def clean_up_expired() -> None:
        remove_expired.with_retry_policy(network_retry(retry_delay_seconds))()

    return clean_up_expired


def build_cleanup_schedule(job: dg.JobDefinition, cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Runs the cleanup job on '{cron}' (UTC; {CLEANUP_CRON_VARIABLE}). A missed day is done the next.",
    )
