"""Dialect helpers shared by the repository modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def upsert_insert(session: Session, table: Any) -> Any:
    """``INSERT`` that supports ``.on_conflict_do_nothing()`` on SQLite and PostgreSQL."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql_insert(table)
    if name == "sqlite":
        return sqlite_insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r}")  # pragma: no cover - only the two supported
