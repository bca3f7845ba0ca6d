"""SQL helpers shared by the repository modules: dialect differences, rows read by id."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from inbox_pipeline.db.errors import NotFound

Model = TypeVar("Model")


def upsert_insert(session: Session, table: Any) -> Any:
    """``INSERT`` that supports ``.on_conflict_do_nothing()`` on SQLite and PostgreSQL."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql_insert(table)
    if name == "sqlite":
        return sqlite_insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r}")  # pragma: no cover - only the two supported


def get_row(session: Session, model: type[Model], row_id: int, what: str) -> Model:
    """The row as the database has it now (not the session's earlier copy); ``NotFound`` says
    "no <what> #<id>"."""
    row = session.get(model, row_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no {what} #{row_id}")
    return row
