"""The hourly digest schedule.

It ticks at the top of every hour UTC (users' hours are whole hours in their
own zones; half-hour zones are caught by the next tick) and asks for a run
only when some digest is due, so the run list shows work, not empty hours.

Missed hours: for a plain cron schedule Dagster's scheduler launches only the
latest missed tick after downtime. That is enough: the service compiles
everything due at that tick, including a period whose due hour fell while
the daemon was down (also when the next tick is already in the next period).
The run key is the tick, so a tick never launches two runs.
"""

# No "from __future__ import annotations": Dagster reads the config and resource annotations at definition time.
from datetime import datetime, timezone

import dagster as dg

from inbox_pipeline.defs.common import digest_run_config
from inbox_pipeline.defs.resources import PipelineResource

SCHEDULE_NAME = "digest_schedule"
CRON = "0 * * * *"


def build_digest_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "Every hour: if any user's daily or weekly digest is due (in the user's own timezone), or a digest "
            "of an earlier run is unfinished, launch the digest job for this hour. A missed hour is caught up by "
            "the next tick."
        ),
    )
    def digest_schedule(context: dg.ScheduleEvaluationContext, pipeline: PipelineResource):
        from inbox_pipeline.services.digests import due_work

        tick = context.scheduled_execution_time or datetime.now(timezone.utc)
        tick = tick.astimezone(timezone.utc)
        work = due_work(pipeline.pipeline(), tick)
        if not work:
            return dg.SkipReason(f"no digest due at {tick:%Y-%m-%d %H:%M} UTC")
        return dg.RunRequest(
            run_key=f"digests@{tick:%Y-%m-%dT%H:%MZ}",
            run_config=digest_run_config(tick.isoformat()),
            tags={
                "inbox-pipeline/digests-due": str(len(work.due)),
                "inbox-pipeline/digests-unfinished": str(len(work.unfinished)),
            },
        )

    return digest_schedule
