"""Maintenance in Dagster: the cleanup job and its daily schedule.

``build_maintenance_definitions(settings)`` returns them; like the digest
definitions it uses the main definitions' ``pipeline`` resource and is
merged with them. Retention comes from ``INBOX_PIPELINE_RETENTION_DAYS`` and
``INBOX_PIPELINE_FAILED_RETENTION_DAYS`` (see ``services.cleanup``), the time
of day from ``INBOX_PIPELINE_CLEANUP_CRON`` (UTC, default ``30 3 * * *``), all
through ``Settings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from inbox_pipeline.defs.maintenance.cleanup import CLEANUP_CRON_VARIABLE, build_cleanup_job, build_cleanup_schedule

if TYPE_CHECKING:
    from inbox_pipeline.config import Settings

__all__ = ["CLEANUP_CRON_VARIABLE", "build_maintenance_definitions"]


def build_maintenance_definitions(settings: "Settings") -> dg.Definitions:
    from inbox_pipeline.services.cleanup import RetentionPolicy

    job = build_cleanup_job(RetentionPolicy.from_settings(settings), settings.retry_delay_seconds)
    return dg.Definitions(jobs=[job], schedules=[build_cleanup_schedule(job, settings.cleanup_cron)])
