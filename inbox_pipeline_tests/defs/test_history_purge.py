"""The cleanup job also keeps Dagster's own database bounded, on a PostgreSQL instance.

Real runs of the real jobs are made at past dates (time-machine), ticks of the
inbox sensor are stored at past dates, then the cleanup job runs today: what
is past retention is gone with its event log, the rest is kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
import time_machine

from inbox_pipeline_tests.defs.harness import Deployment, deployment
from inbox_pipeline_tests.helpers import declared_sensor_state, stored_tick

UTC = timezone.utc


@pytest.fixture
def pg_deployment(monkeypatch, tmp_path, postgres_url):
    """The app on SQLite with local folders; Dagster's instance on PostgreSQL, as in production."""
    with deployment(
        monkeypatch, tmp_path, instance_overrides={"storage": {"postgres": {"postgres_url": postgres_url}}}
    ) as dep:
        yield dep


def _cleanup(dep: Deployment, **config: int) -> dg.ExecuteInProcessResult:
    from inbox_pipeline.definitions import build_definitions

    job = build_definitions().get_job_def("clean_up_expired")
    run_config = {"ops": {"remove_expired_emails_and_epubs": {"config": config}}} if config else None
    return job.execute_in_process(instance=dep.instance, run_config=run_config, raise_on_error=False)


def _email_run(dep: Deployment, to: str) -> str:
    """One email to ``to`` through the inbox sensor and its run; returns the run id."""
    from inbox_pipeline_tests.defs.mails import newsletter

    inbox = dep.data_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / f"{to.split('@')[0]}.eml").write_bytes(newsletter(1, to))
    (run,) = dep.drain()
    return run.run_id


def _tick(instance: dg.DagsterInstance, state, at: datetime, status: str) -> int:
    error = "NotADirectoryError: the inbox" if status == "FAILURE" else None
    return stored_tick(instance, state, at, status, error)


def test_cleanup_purges_runs_events_and_ticks_past_retention(pg_deployment) -> None:
    dep = pg_deployment
    instance = dep.instance
    now = datetime.now(UTC)
    runs: dict[str, str] = {}

    def at(days: float):
        return time_machine.travel(now - timedelta(days=days), tick=True)

    with at(31):
        runs["email run, 31 days old"] = _email_run(dep, "stranger@elsewhere.example")  # unroutable: a green run
        runs["failed run, 31 days old"] = _cleanup(dep, retention_days=0).run_id
    with at(29):
        runs["success, 29 days old"] = _cleanup(dep).run_id
    with at(91):
        runs["failed run, 91 days old"] = _cleanup(dep, retention_days=0).run_id
    with at(200):
        # A run that never finished (its worker vanished before run monitoring existed): kept.
        unfinished = instance.create_run_for_job(
            job_def=dg.JobDefinition(graph_def=dg.GraphDefinition(name="left_behind", node_defs=[])),
            status=dg.DagsterRunStatus.STARTED,
        )
        instance.report_engine_event("left behind", unfinished)
        runs["started 200 days ago, never finished"] = unfinished.run_id
    for name, run_id in runs.items():
        assert instance.get_run_by_id(run_id) is not None, name
    old_email_events = instance.all_logs(runs["email run, 31 days old"])
    assert any(e.dagster_event and e.dagster_event.is_step_materialization for e in old_email_events)

    state = declared_sensor_state(instance, "inbox_pipeline.definitions", "inbox_pipeline", "inbox_sensor")
    ticks = {
        "skipped 31 days ago": _tick(instance, state, now - timedelta(days=31), "SKIPPED"),
        "success 31 days ago": _tick(instance, state, now - timedelta(days=31), "SUCCESS"),
        "skipped 1 day ago": _tick(instance, state, now - timedelta(days=1), "SKIPPED"),
        "failure 31 days ago": _tick(instance, state, now - timedelta(days=31), "FAILURE"),
        "failure 91 days ago": _tick(instance, state, now - timedelta(days=91), "FAILURE"),
    }

    result = _cleanup(dep)
    assert result.success

    kept = {name for name, run_id in runs.items() if instance.get_run_by_id(run_id) is not None}
    assert kept == {"failed run, 31 days old", "success, 29 days old", "started 200 days ago, never finished"}
    for name in set(runs) - kept:
        assert instance.all_logs(runs[name]) == [], f"the events of the {name} stayed"
    assert instance.all_logs(runs["failed run, 31 days old"])  # kept runs keep their events
    left = {t.tick_id for t in instance.get_ticks(state.instigator_origin_id, state.selector_id)}
    assert {name for name, tick_id in ticks.items() if tick_id in left} == {"skipped 1 day ago", "failure 31 days ago"}

    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["dagster_runs"].value == 1
    assert output.event_specific_data.metadata["dagster_failed_runs"].value == 1

    # A long history is purged oldest first within a time budget; what is left waits for the next cleanup.
    from inbox_pipeline.defs.maintenance.history import purge_dagster_history
    from inbox_pipeline.services.cleanup import RetentionPolicy

    later = purge_dagster_history(instance, now + timedelta(days=120), RetentionPolicy(), budget_seconds=0)
    assert later.more_left and later.runs == 0
    assert instance.get_run_by_id(runs["success, 29 days old"]) is not None
    done = purge_dagster_history(instance, now + timedelta(days=120), RetentionPolicy())
    assert not done.more_left and (done.runs, done.failed_runs) == (2, 1)  # + the cleanup run of today
    assert instance.get_run_by_id(runs["started 200 days ago, never finished"]) is not None
