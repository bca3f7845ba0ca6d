"""Alembic environment: uses the connection handed over by ``upgrade()``, or
builds one from INBOX_PIPELINE_DATABASE_URL (or ``-x url=...``) for the
``alembic`` command run from the repository root."""

from __future__ import annotations

from alembic import context

from inbox_pipeline.config import Settings, load_dotenv_once
from inbox_pipeline.db.engine import make_engine
from inbox_pipeline.db.models import Base, UtcDateTime

target_metadata = Base.metadata


def _render_item(type_: str, obj, autogen_context):
    # Migrations must not import our models: render our UTC type as its column type.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return


    load_dotenv_once()
    url = context.get_x_argument(as_dictionary=True).get("url") or Settings.from_env().database_url
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():  # pragma: no cover - we always migrate a live database
    raise SystemExit("offline (--sql) migrations are not supported; point at a database")
run()
