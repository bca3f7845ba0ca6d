"""Dagster's PostgreSQL storage, with each process keeping its connection open.

``dagster_postgres.DagsterPostgresStorage`` opens a new PostgreSQL connection for
every statement (SQLAlchemy's ``NullPool``) everywhere but in the webserver. A run
writes a dozen events per email, each its own connection: in a burst, a profile of
the run workers (py-spy, benchmarks/e2e.py) found 16% of their time in
``psycopg2.connect``, and the daemon as much again, before counting the server
forking a backend for each one (and a TLS handshake, where the database asks for
one).

``PooledPostgresStorage`` is that same storage, configured as the webserver
configures it (Dagster's public ``optimize_for_webserver``): every process (daemon,
code server, run worker, webserver) keeps one connection per storage open and
opens a short-lived extra one only while that one is busy; connections are
replaced after an hour. Same tables, same config (``postgres_url`` or
``postgres_db``); only the connection handling differs. Use it in dagster.yaml::

    storage:
      custom:
        module: inbox_pipeline.defs.instance_storage
        class: PooledPostgresStorage
        config:
          postgres_db: {...}   # as under `storage: postgres:`

A process holds at most three idle connections (runs, events, schedules), closed
when its instance is disposed: size PostgreSQL's ``max_connections`` for 3 x (runs at
once + 3) plus the app's own pools (docs/DEPLOY.md, "Capacity").
"""

from __future__ import annotations

from typing import Any

from dagster_postgres import DagsterPostgresStorage, PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

# No statement timeout (as dagster-postgres's default); connections replaced after an hour;
# up to this many more while the kept one is busy (a daemon's threads), each closed after use.
STATEMENT_TIMEOUT_MS = 0
POOL_RECYCLE_SECONDS = 3600
MAX_OVERFLOW = 8


class _KeepsConnection:
    """A dagster-postgres storage part that keeps its connection open, and closes it on dispose."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool, token_provider: Any = None) -> None:
        super().__init__(postgres_url, should_autocreate_tables, token_provider=token_provider)  # type: ignore[call-arg]
        self.optimize_for_webserver(  # type: ignore[attr-defined]
            statement_timeout=STATEMENT_TIMEOUT_MS, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=MAX_OVERFLOW
        )

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engine.dispose()  # type: ignore[attr-defined]  # the pool optimize_for_webserver made


class _RunStorage(_KeepsConnection, PostgresRunStorage):
    pass


class _EventLogStorage(_KeepsConnection, PostgresEventLogStorage):
    pass


class _ScheduleStorage(_KeepsConnection, PostgresScheduleStorage):
    pass


class PooledPostgresStorage(DagsterPostgresStorage):
    """``DagsterPostgresStorage`` whose three storages each keep one connection open."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: Any = None,
        token_provider: Any = None,
    ) -> None:
        # What DagsterPostgresStorage.__init__ sets, but its three parts are ours: its own would
        # open (and check the tables through) three more engines of a connection per statement.
        super(DagsterPostgresStorage, self).__init__()
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._pooled = (  # in dagster-postgres's order: the run storage creates or stamps the schema first
            _RunStorage(postgres_url, should_autocreate_tables, token_provider),
            _EventLogStorage(postgres_url, should_autocreate_tables, token_provider),
            _ScheduleStorage(postgres_url, should_autocreate_tables, token_provider),
        )

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledPostgresStorage:
        from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

        return cls(
            pg_url_from_config(config_value),
            config_value.get("should_autocreate_tables", True),
            inst_data,
            get_token_provider_from_config(config_value),
        )

    @property
    def run_storage(self) -> PostgresRunStorage:
        return self._pooled[0]

    @property
    def event_log_storage(self) -> PostgresEventLogStorage:
        return self._pooled[1]

    @property
    def schedule_storage(self) -> PostgresScheduleStorage:
        return self._pooled[2]

