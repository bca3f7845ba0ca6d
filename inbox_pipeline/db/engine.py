"""Engines, sessions and migrations.

- ``make_engine(url: str) -> Engine``: SQLite gets WAL, foreign keys, a busy
  timeout and ``BEGIN IMMEDIATE`` transactions (so check-then-write code is
  serialised instead of failing with "database is locked" half way);
  PostgreSQL gets a liveness check of a pooled connection that sat idle for
  ``PING_AFTER_IDLE_SECONDS`` (``ping_after_idle=`` sets it; 0 checks every one).
- ``session_factory(engine) -> sessionmaker[Session]``: use as
  ``with factory.begin() as session: ...`` (one transaction, committed on exit).
- ``upgrade(url: str, revision: str = "head") -> str``: Alembic to ``revision``
  programmatically (migrations ship inside the package); returns the revision.
- ``current_revision(engine) -> str | None`` and ``head_revision() -> str``.

The repository functions in this package never commit: they flush, and the
caller's ``factory.begin()`` block decides the transaction.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
# A pooled connection idle this long is checked before use (SELECT 1; a dead one is replaced, unseen).
# One used more recently is trusted: checking each (SQLAlchemy's pool_pre_ping) was a round trip for
# every transaction, 29 an email in a burst. If the server dropped it meanwhile (a restart), that one
# transaction fails (the worker retries the email) and the pool replaces all its connections.
PING_AFTER_IDLE_SECONDS = 10.0
# Any constant shared by every process that migrates this database.
_PG_MIGRATION_LOCK = 0x1B0C_5E11


def make_engine(url: str, *, ping_after_idle: float = PING_AFTER_IDLE_SECONDS, **kwargs: Any) -> Engine:
    """An Engine configured for concurrent use by several processes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine, ping_after_idle)
    return engine


def _ping_when_idle(engine: Engine, seconds: float) -> None:
    """SQLAlchemy's documented pessimistic check (a ``checkout`` listener raising
    ``DisconnectionError``: the pool replaces the connection and checks out again), for connections
    that sat idle at least ``seconds`` only."""
    from sqlalchemy.exc import DisconnectionError

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < seconds:
            return  # new, or in use moments ago
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:  # noqa: BLE001 - any failure here means a connection not worth keeping
            idle = time.monotonic() - idle_since
            raise DisconnectionError(f"a pooled connection idle {idle:.0f} s was closed: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so SAVEPOINT and
        # BEGIN IMMEDIATE behave (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        if not _is_memory(engine):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: two processes doing a
        # read-then-write wait for each other instead of one failing.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _is_memory(engine: Engine) -> bool:
    database = engine.url.database or ""
    return database in ("", ":memory:") or "mode=memory" in database


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows returned by a finished transaction stay readable.
    return sessionmaker(bind=engine, expire_on_commit=False)


# Alembic stays lazy here (about 200 ms on top of SQLAlchemy): every run imports this module, few migrate.


def _alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at ``url`` to ``revision``; safe to run from several processes."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two deploys starting together must not both create the tables.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            command.upgrade(_alembic_config(conn), revision)
        rev = current_revision(engine)
    finally:
        engine.dispose()
    return rev or ""
