"""Alerts in Dagster: the run-failure sensor (failed run -> user notice + operator alert), the
run-success sensor (a re-execution that succeeds closes the episode), the notification retry sensor
(deferred notices when due, notices and alerts whose send said "try later" again) and the
deployment watchdog.

They name no resources of their own: they use the main definitions' ``pipeline`` resource
(whose options say where operator alerts go).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from inbox_pipeline.config import Settings
from inbox_pipeline.defs.common import BATCH_JOB

from inbox_pipeline.defs.alerts.sensors import (
    NOTIFICATION_RETRY_SENSOR,
    RUN_FAILURE_SENSOR,
    RUN_SUCCESS_SENSOR,
    TAG_OPERATOR_ALERT,
    TAG_OPERATOR_ALERT_RUN,
    TAG_RESOLVED_BY,
    build_notification_retry_sensor,
    build_run_failure_sensor,
    build_run_success_sensor,
    will_be_retried,
)
from inbox_pipeline.defs.alerts.watchdog import WATCHDOG_SENSOR, build_watchdog_sensor

__all__ = [
    "build_alert_definitions",
    "NOTIFICATION_RETRY_SENSOR",
    "RUN_FAILURE_SENSOR",
    "RUN_SUCCESS_SENSOR",
    "TAG_OPERATOR_ALERT",
    "TAG_OPERATOR_ALERT_RUN",
    "TAG_RESOLVED_BY",
    "build_notification_retry_sensor",
    "build_run_failure_sensor",
    "build_run_success_sensor",
    "WATCHDOG_SENSOR",
    "build_watchdog_sensor",
    "will_be_retried",
]


def notice_retry_seconds(settings: Settings) -> int:
    """Every 5 min, or a third of a shorter notice grace: a deferred notice is re-checked and sent (or
    withdrawn) soon after it is due, not up to 5 min late."""
    return max(1, min(300, int(settings.notice_grace_minutes * 60 // 3)))


def build_alert_definitions(settings: Settings, *, watched: Sequence[dg.JobDefinition]) -> dg.Definitions:
    """The alert sensors for the ``watched`` jobs; the watchdog resumes held mail in the batch job among them."""
    (batch_job,) = [job for job in watched if job.name == BATCH_JOB]
    return dg.Definitions(
        sensors=[
            build_run_failure_sensor(watched),
            build_run_success_sensor(watched),
            build_notification_retry_sensor(interval_seconds=notice_retry_seconds(settings)),
            build_watchdog_sensor(
                batch_job,
                interval_seconds=settings.watchdog_interval_seconds,
                stale_after=timedelta(seconds=settings.watchdog_stale_seconds),
                stall_after=timedelta(seconds=settings.watchdog_stall_seconds),
                resume_every=timedelta(seconds=settings.watchdog_resume_seconds),
            ),
        ]
    )
