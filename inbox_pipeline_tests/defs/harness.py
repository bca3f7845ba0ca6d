"""Run the real Definitions in this process: evaluate the inbox sensor, execute the runs it asks for.

Runs go through ``dg.execute_job`` on a reconstructable job and a temporary
Dagster instance, so outputs are persisted (fs IO manager) and runs can be
re-executed from failure exactly as from the UI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from inbox_pipeline_tests.helpers import forget_reconstructed_jobs

ENV_PREFIX = "INBOX_PIPELINE_"


def process_email_job() -> dg.JobDefinition:
    """The job as the code location builds it from the environment (for ``dg.reconstructable``)."""
    from inbox_pipeline.definitions import build_definitions

    return build_definitions().get_job_def("process_email")


def inbox_batch_job() -> dg.JobDefinition:
    """The batch job as the code location builds it (for ``dg.reconstructable``)."""
    from inbox_pipeline.definitions import build_definitions

    return build_definitions().resolve_job_def("process_inbox_batch")


def requested_emails(request: dg.RunRequest) -> list[str]:
    """The names of the pending inbox objects a run request names (one for process_email, several for a batch)."""
    from inbox_pipeline.defs.common import inbox_objects_of_run

    return inbox_objects_of_run(request)


def take_inbox_job() -> dg.JobDefinition:
    """The take job as the code location builds it (for ``dg.reconstructable``)."""
    from inbox_pipeline.definitions import build_definitions

    return build_definitions().resolve_job_def("take_inbox")


def job_for(job_name: str | None):
    jobs = {"process_inbox_batch": inbox_batch_job, "take_inbox": take_inbox_job}
    return dg.reconstructable(jobs.get(job_name, process_email_job))


def current_definitions() -> dg.Definitions:
    from inbox_pipeline.definitions import build_definitions

    return build_definitions()


@dataclass
class Deployment:
    instance: dg.DagsterInstance
    data_dir: Path
    results: list[dg.ExecuteJobResult] = field(default_factory=list)
    requested: list[dg.RunRequest] = field(default_factory=list)  # every request run, in order
    cursors: dict[str, str | None] = field(default_factory=dict)  # each sensor's cursor, kept as the daemon does
    opened: dict = field(default_factory=dict)  # settings -> the Pipeline made here for them, closed at the end

    @property
    def settings(self):
        from inbox_pipeline.config import Settings

        return Settings.from_env()

    def pipeline(self):
        """The ``Pipeline`` on the deployment's current settings (one per settings: one connection pool),
        closed with the deployment."""
        from inbox_pipeline.services.context import Pipeline

        settings = self.settings
        if settings not in self.opened:
            self.opened[settings] = Pipeline.from_settings(settings)
        return self.opened[settings]

    def close(self) -> None:
        while self.opened:
            self.opened.popitem()[1].close()

    def tick(self, sensor_name: str = "inbox_sensor") -> dg.SensorResult | dg.SkipReason:
        """One evaluation of the real sensor, with the cursor the last one left (as the daemon keeps it)."""
        defs = current_definitions()
        repo = defs.get_repository_def()
        sensor = repo.get_sensor_def(sensor_name)
        with dg.build_sensor_context(
            instance=self.instance, resources=defs.resources, repository_def=repo, cursor=self.cursors.get(sensor_name)
        ) as ctx:
            result = sensor(ctx)
        if isinstance(result, dg.SensorResult) and result.cursor is not None:
            self.cursors[sensor_name] = result.cursor
        return result

    def run(self, request: dg.RunRequest, **kwargs) -> dg.ExecuteJobResult:
        self.requested.append(request)
        tags = {**(request.tags or {}), "dagster/run_key": request.run_key or ""}
        return self._execute(job_for(request.job_name), run_config=request.run_config, tags=tags, **kwargs)

    def emails_of(self, result: dg.ExecuteJobResult) -> list[int]:
        """The inbound email ids a run registered (its first op tags them)."""
        from inbox_pipeline.defs.common import email_ids_of_run

        return email_ids_of_run(self.instance.get_run_by_id(result.run_id))

    def queue(self, request: dg.RunRequest) -> dg.DagsterRun:
        """The run the daemon creates for ``request``, not started yet (waiting in the queue)."""
        return self.instance.create_run_for_job(
            job_for(request.job_name).get_definition(),
            run_config=request.run_config,
            tags={**request.tags, "dagster/run_key": request.run_key or ""},
        )

    def reexecute(self, parent_run_id: str, *, from_failure: bool = True, step_selection=None) -> dg.ExecuteJobResult:
        job = job_for(self.instance.get_run_by_id(parent_run_id).job_name)
        if from_failure:
            options = dg.ReexecutionOptions.from_failure(parent_run_id, self.instance)
        else:
            options = dg.ReexecutionOptions(parent_run_id=parent_run_id, step_selection=step_selection)
        return self._execute(job, reexecution_options=options)

    def _execute(self, job, **kwargs) -> dg.ExecuteJobResult:
        """The job run to its end in this process on the deployment's instance, kept in ``results``."""
        with dg.execute_job(job, instance=self.instance, raise_on_error=False, **kwargs) as result:
            self.results.append(result)
            return result

    def requests(self, result) -> list[dg.RunRequest]:
        return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []

    def drain(self, max_ticks: int = 20) -> list[dg.ExecuteJobResult]:
        """Tick and run until the inbox is empty; returns the runs."""
        runs = []
        for _ in range(max_ticks):
            requests = self.requests(self.tick())
            if not requests:
                return runs
            runs += [self.run(r) for r in requests]
        raise AssertionError("the inbox did not drain")

    # --- what a person would look at -------------------------------------------

    def rows(self) -> list[tuple[int, str, str, str | None]]:
        """(id, state, reason, subject) of every inbound email."""
        from sqlalchemy import select

        from inbox_pipeline.db.models import InboundEmail

        with self.pipeline().sessions() as session:
            return [
                (r.id, r.state, r.reason or "", r.subject)
                for r in session.scalars(select(InboundEmail).order_by(InboundEmail.id))
            ]

    def deliveries(self):
        from sqlalchemy import select

        from inbox_pipeline.db.models import Delivery

        with self.pipeline().sessions() as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))

    def notifications(self):
        from sqlalchemy import select

        from inbox_pipeline.db.models import Notification

        with self.pipeline().sessions() as session:
            return list(session.scalars(select(Notification).order_by(Notification.id)))


def configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> Path:
    """Point every INBOX_PIPELINE_* variable at test values (the rest at tmp_path)."""
    import os

    for key in list(os.environ):
        if key.startswith(ENV_PREFIX) and key != "INBOX_PIPELINE_TEST_PG":
            monkeypatch.delenv(key)
    data = tmp_path / "data"
    defaults = {
        "DATA_DIR": str(data),
        "INBOX": str(data / "inbox"),
        "STORAGE": str(data / "storage"),
        "MAILER": f"outbox:{data / 'outbox'}",
        "SENDER": "kindle-delivery@pipeline.example",
        "INBOUND_DOMAIN": "in.example",
        "FETCH_IMAGES": "false",
        "RETRY_DELAY_SECONDS": "0",
        "WORKER_IDLE_SECONDS": "0",  # the harness runs take runs before workers: an empty queue is the end
    }
    for key, value in {**defaults, **values}.items():
        monkeypatch.setenv(ENV_PREFIX + key, value)
    return data


@contextmanager
def deployment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, instance_overrides: dict | None = None, **values: str
) -> Iterator[Deployment]:
    """The app configured with ``values`` (see ``configure``) on a migrated database, and a test Dagster
    instance (``instance_overrides``: its dagster.yaml settings, e.g. run retries or PostgreSQL storage)."""
    from inbox_pipeline_tests.conftest import migrated

    data = configure(monkeypatch, tmp_path, **values)
    forget_reconstructed_jobs()
    dep_settings = Deployment(instance=None, data_dir=data).settings  # type: ignore[arg-type]
    migrated(dep_settings.database_url)
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home"), overrides=instance_overrides) as instance:
        dep = Deployment(instance=instance, data_dir=data)
        try:
            yield dep
        finally:
            dep.close()


def add_reader(
    dep: Deployment,
    email: str,
    *,
    kindle: str | None = None,
    plan: str = "unlimited",
    delivery: str = "instant",
    monthly_limit: int | None = None,
) -> str:
    """A user with one inbound address; returns the address."""
    from inbox_pipeline.db.users import add_user, issue_address, set_plan

    with dep.pipeline().sessions.begin() as session:
        if monthly_limit is not None:
            set_plan(session, plan, monthly_limit=monthly_limit)
        user = add_user(session, email=email, plan=plan, delivery=delivery, kindle=kindle)
        return issue_address(session, user.id, "news", domain=dep.settings.inbound_domain).address
