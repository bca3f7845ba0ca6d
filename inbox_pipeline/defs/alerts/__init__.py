"""Alerts in Dagster: the run-failure sensor (failed run -> user notice + operator alert), the
run-success sensor (a re-execution that succeeds closes the episode), the notification retry sensor
(deferred notices when due, notices and alerts whose send said "try later" again) and the
deployment watchdog.

Both name no resources of their own: they use the main definitions' ``pipeline`` resource.
"""

from inbox_pipeline.defs.alerts.sensors import (
    NOTIFICATION_RETRY_SENSOR,
    RUN_FAILURE_SENSOR,
    RUN_SUCCESS_SENSOR,
    TAG_EMAIL_IDS,
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
    "NOTIFICATION_RETRY_SENSOR",
    "RUN_FAILURE_SENSOR",
    "RUN_SUCCESS_SENSOR",
    "TAG_EMAIL_IDS",
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
