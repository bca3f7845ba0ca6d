"""Dialect helpers shared by the repository modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def upsert_insert(session: Session, table: Any) -> Any:
    """``INSERT`` that supports ``.on_conflict_do_nothing()`` on SQLite and PostgreSQL."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database dialect {name!r}")
    return insert(table)
