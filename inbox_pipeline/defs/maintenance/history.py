"""Dagster's own history past retention: finished runs (with their event logs) and sensor/schedule ticks.

Every step of a run writes about ten event-log rows and every sensor tick a
tick row, so without a purge Dagster's database grows forever. The same
retention as the app's data applies (``RetentionPolicy``): successful runs and
ticks go after ``days``, failed or canceled ones after ``failed_days``. Runs
not finished (queued, starting, started, canceling) stay whatever their age.
Runs go through public instance APIs: ``get_run_records`` and ``delete_run`` (the
run, its tags and its events). Ticks have no public Python API: ``all_instigator_state``
and ``purge_ticks`` take the types ``defs.common.tick_types`` isolates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from inbox_pipeline.defs.common import tick_types

if TYPE_CHECKING:
    from inbox_pipeline.services.cleanup import RetentionPolicy

PAGE = 100  # runs deleted per query
# Deleting a run takes a few queries (about 0.2-0.4 s on PostgreSQL here): a first purge of a long
# history stops after this long, under run monitoring's max runtime, and the next cleanup goes on.
TIME_BUDGET_SECONDS = 1200

SUCCEEDED_RUNS = (dg.DagsterRunStatus.SUCCESS,)
FAILED_RUNS = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@dataclass
class HistoryPurgeReport:
    runs: int = 0
    failed_runs: int = 0
    more_left: bool = False  # stopped at the time budget: the oldest went first, the next cleanup goes on
    instigators: int = 0  # sensors and schedules whose old ticks were purged
    errors: list[str] = field(default_factory=list)


def purge_dagster_history(
    instance: dg.DagsterInstance, now: datetime, policy: "RetentionPolicy", budget_seconds: float = TIME_BUDGET_SECONDS
) -> HistoryPurgeReport:
    """Delete finished runs (and their events) and ticks older than the policy allows at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    report = HistoryPurgeReport()
    deadline = time.monotonic() + budget_seconds
    finished_cutoff = now - timedelta(days=policy.days)
    failed_cutoff = now - timedelta(days=policy.failed_days)
    report.runs = _delete_runs(instance, SUCCEEDED_RUNS, finished_cutoff, report, deadline)
    report.failed_runs = _delete_runs(instance, FAILED_RUNS, failed_cutoff, report, deadline)
    if instance.schedule_storage is None:  # an ephemeral instance (execute_in_process): no ticks kept
        return report
    tick_status = tick_types().tick_status  # purge_ticks' own argument type
    for state in instance.all_instigator_state():
        try:
            instance.purge_ticks(
                state.instigator_origin_id,
                state.selector_id,
                before=finished_cutoff.timestamp(),
                tick_statuses=[tick_status.SUCCESS, tick_status.SKIPPED],
            )
            instance.purge_ticks(
                state.instigator_origin_id,
                state.selector_id,
                before=failed_cutoff.timestamp(),
                tick_statuses=[tick_status.FAILURE],
            )
        except Exception as exc:  # noqa: BLE001 - one instigator's ticks never stop the others'
            report.errors.append(f"ticks of {state.instigator_name}: {type(exc).__name__}: {exc}")
            continue
        report.instigators += 1
    return report


def _delete_runs(
    instance: dg.DagsterInstance,
    statuses: tuple[dg.DagsterRunStatus, ...],
    cutoff: datetime,
    report: HistoryPurgeReport,
    deadline: float,
) -> int:
    # A finished run's last update is its end, so "updated before the cutoff" is "ended before it".
    filters = dg.RunsFilter(statuses=list(statuses), updated_before=cutoff)
    deleted = 0
    while True:
        records = instance.get_run_records(filters=filters, limit=PAGE, order_by="update_timestamp", ascending=True)
        deleted_now = 0
        for record in records:
            if time.monotonic() > deadline:
                report.more_left = True
                return deleted + deleted_now
            run_id = record.dagster_run.run_id
            try:
                instance.delete_run(run_id)
            except Exception as exc:  # noqa: BLE001 - kept for the next cleanup; the others go on
                report.errors.append(f"run {run_id}: {type(exc).__name__}: {exc}")
                continue
            deleted_now += 1
        deleted += deleted_now
        if deleted_now < PAGE:  # the last page, or only runs that would not go
            return deleted
