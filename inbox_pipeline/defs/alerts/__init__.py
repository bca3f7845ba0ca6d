"""Alerts in Dagster: the run-failure sensor (failed run -> user notice + operator alert) and the
notification retry sensor (notices and alerts whose send said "try later" are sent again).

Both name no resources of their own: they use the main definitions' ``pipeline`` resource.
"""

from inbox_pipeline.defs.alerts.sensors import (
    NOTIFICATION_RETRY_SENSOR,
    RUN_FAILURE_SENSOR,
    TAG_EMAIL_IDS,
    TAG_OPERATOR_ALERT,
    build_notification_retry_sensor,
    build_run_failure_sensor,
    will_be_retried,
)

__all__ = [
    "NOTIFICATION_RETRY_SENSOR",
    "RUN_FAILURE_SENSOR",
    "TAG_EMAIL_IDS",
    "TAG_OPERATOR_ALERT",
    "build_notification_retry_sensor",
    "build_run_failure_sensor",
    "will_be_retried",
]
