"""Resources, made from ``Settings`` in one place (``build_resources``).

``pipeline``: the app database, the inbox, storage and the mailer as the steps
take them (a ``services.context.Pipeline``). The resource owns its clients:
``setup_for_execution`` makes the ``Pipeline`` for the run (or the sensor tick,
or the schedule evaluation) and ``teardown_after_execution`` closes it, so no
engine or boto3 client outlives what used it and none is kept in a
module-global cache.

Values that may hold secrets (the database URL, an SMTP URL with a password)
are passed as ``dg.EnvVar`` when the variable is set, so the Dagster UI shows
the variable's name, never its value. The other settings the steps need travel
as one ``PipelineOptions`` built by ``PipelineOptions.from_settings``.

A new resource (a rate limiter, a client) is one more entry in the dict
``build_resources`` returns, made from the same ``Settings``.
"""

# No "from __future__ import annotations": Dagster reads the resource annotations at definition time.

import dagster as dg

from inbox_pipeline.config import PREFIX, Settings
from inbox_pipeline.services.context import Pipeline, PipelineOptions


class PipelineResource(dg.ConfigurableResource):
    """The app database (SQLAlchemy URL), the inbox (``s3://bucket/prefix/`` or a folder), storage
    (``s3://bucket/prefix/`` or a folder) and the mailer (``ses``, ``smtp://...``, ``outbox:<folder>``),
    with the processing options, as one ``Pipeline`` per run or tick."""

    database_url: str
    inbox: str
    storage: str
    mailer: str
    # Not configuration of its own: the Settings-derived options, kept as the one object the steps read.
    options: dg.ResourceDependency[PipelineOptions]

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._pipeline = Pipeline(
            database_url=self.database_url,
            inbox_uri=self.inbox,
            storage_uri=self.storage,
            mailer_uri=self.mailer,
            options=self.options,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._pipeline.close()

    def pipeline(self) -> Pipeline:
        """This run's ``Pipeline`` (its clients are made on first use and closed after the run)."""
        pipeline = getattr(self, "_pipeline", None)
        if pipeline is None:
            raise dg.DagsterInvariantViolationError(
                "the pipeline resource is not set up: use it inside a run, a sensor or dg.build_resources"
            )
        return pipeline


def _env_or(in_process_env: frozenset[str], name: str, default: str) -> str:
    """``dg.EnvVar(name)`` when the process's environment sets it (its value stays out of the UI), else the value."""
    return dg.EnvVar(PREFIX + name) if PREFIX + name in in_process_env else default


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources of a deployment described by ``settings``."""
    given = settings.in_process_env
    return {
        "pipeline": PipelineResource(
            database_url=_env_or(given, "DATABASE_URL", settings.database_url),
            inbox=_env_or(given, "INBOX", settings.inbox),
            storage=_env_or(given, "STORAGE", settings.storage),
            mailer=_env_or(given, "MAILER", settings.mailer),
            options=PipelineOptions.from_settings(settings),
        ),
    }
