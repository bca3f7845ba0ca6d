"""Inbound email in Dagster: the per-email and batch jobs (ops from parse to delivery), the inbox
sensor that launches them, the asset specs they report, the EPUB check and the Kindle rejection-rate
check (with its daily schedule)."""

from __future__ import annotations

import dagster as dg

from inbox_pipeline.config import Settings
from inbox_pipeline.defs.email.assets import (
    ASSET_SPECS,
    build_rejection_rate_schedule,
    epub_kindle_ready,
    kindle_rejection_rate,
)
from inbox_pipeline.defs.email.job import build_process_email_job, build_process_inbox_batch_job, build_take_inbox_job
from inbox_pipeline.defs.intake.sensors import build_inbox_sensor
from inbox_pipeline.seams.inbox import inbox_from_uri


def build_email_definitions(settings: Settings) -> dg.Definitions:
    process_email = build_process_email_job(settings.retry_delay_seconds)
    process_batch = build_process_inbox_batch_job(settings.retry_delay_seconds, settings.worker_idle_seconds)
    take_inbox = build_take_inbox_job(settings.retry_delay_seconds)
    inbox_sensor = build_inbox_sensor(
        process_email,
        process_batch,
        take_inbox,
        interval_seconds=settings.sensor_interval_seconds,
        max_emails_per_tick=settings.max_emails_per_tick,
        batch_size=settings.batch_size,
        reconcile_seconds=settings.reconcile_seconds,
        announced=inbox_from_uri(settings.inbox).announces,  # parses the URI only: no AWS
    )
    return dg.Definitions(
        assets=ASSET_SPECS,
        asset_checks=[epub_kindle_ready, kindle_rejection_rate],
        jobs=[process_email, process_batch, take_inbox],
        schedules=[build_rejection_rate_schedule()],
        sensors=[inbox_sensor],
    )
