"""The Dagster code location: assembles resources, the job, sensors, asset specs and checks.

Everything is chosen by environment variables (``Settings.from_env``); see
README "Configuration". Nothing heavy is imported here.
"""

from __future__ import annotations

import dagster as dg

from inbox_pipeline.config import Settings, load_dotenv_once
from inbox_pipeline.defs.digests import build_digest_definitions
from inbox_pipeline.defs.email.assets import (
    ASSET_SPECS,
    build_rejection_rate_schedule,
    epub_kindle_ready,
    kindle_rejection_rate,
)
from inbox_pipeline.defs.email.job import build_process_email_job, build_process_inbox_batch_job
from inbox_pipeline.defs.alerts import (
    build_notification_retry_sensor,
    build_run_failure_sensor,
    build_run_success_sensor,
    build_watchdog_sensor,
)
from inbox_pipeline.defs.alerts.watchdog import watchdog_options
from inbox_pipeline.defs.digests.jobs import build_digest_job
from inbox_pipeline.defs.intake.sensors import build_inbox_sensor
from inbox_pipeline.defs.maintenance import build_maintenance_definitions
from inbox_pipeline.defs.resources import build_resources
from inbox_pipeline.seams.inbox import inbox_from_uri
from inbox_pipeline.services.notice_grace import notice_grace


def notice_retry_seconds() -> int:
    """Every 5 min, or a third of a shorter notice grace: a deferred notice is re-checked and sent (or
    withdrawn) soon after it is due, not up to 5 min late."""
    return max(1, min(300, int(notice_grace().total_seconds() // 3)))


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    if settings is None:
        load_dotenv_once()
        settings = Settings.from_env()
    process_email = build_process_email_job(settings.retry_delay_seconds)
    process_batch = build_process_inbox_batch_job(settings.retry_delay_seconds)
    watched = [process_email, process_batch, build_digest_job(settings.retry_delay_seconds)]
    per_email = dg.Definitions(
        assets=ASSET_SPECS,
        asset_checks=[epub_kindle_ready, kindle_rejection_rate],
        jobs=[process_email, process_batch],
        schedules=[build_rejection_rate_schedule()],
        sensors=[
            build_inbox_sensor(
                process_email,
                process_batch,
                interval_seconds=settings.sensor_interval_seconds,
                max_emails_per_tick=settings.max_emails_per_tick,
                batch_size=settings.batch_size,
                reconcile_seconds=settings.reconcile_seconds,
                announced=inbox_from_uri(settings.inbox).announces,  # parses the URI only: no AWS
            ),
            # the digest job is defined (with its schedule) in defs/digests; watched here by name
            build_run_failure_sensor(watched),
            build_run_success_sensor(watched),
            build_notification_retry_sensor(interval_seconds=notice_retry_seconds()),
            build_watchdog_sensor(process_batch, **watchdog_options()),
        ],
        resources=build_resources(settings),
    )
    return dg.Definitions.merge(
        per_email, build_digest_definitions(settings), build_maintenance_definitions(settings)
    )


defs = build_definitions()
