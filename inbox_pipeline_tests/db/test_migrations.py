"""Alembic from empty on both databases, and models == migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from inbox_pipeline.db.engine import current_revision, head_revision, make_engine, upgrade
from inbox_pipeline.db.models import Base


def test_upgrade_from_empty_creates_every_table_and_seeds_plans(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        assert upgrade(database_url) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:
            plans = dict(conn.execute(text("SELECT name, monthly_limit FROM plans")).all())
        assert plans == {"free": 50, "pro": 1000, "unlimited": None}
        # A second upgrade is a no-op, not an error and not a second set of plans.
        assert upgrade(database_url) == head_revision()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM plans")).scalar() == 3
    finally:
        engine.dispose()


def test_models_and_migrations_agree(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    from alembic import command

    from inbox_pipeline.db.engine import _alembic_config

    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "base")
        assert "users" not in inspect(engine).get_table_names()
        assert upgrade(database_url) == head_revision()
        assert "users" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_sqlite_engine_settings(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10000
    finally:
        engine.dispose()
