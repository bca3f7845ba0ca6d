"""Outages hold emails (state ``waiting``); notices can be deferred and withdrawn.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_STATES = ("received", "parsed", "routed", "unroutable", "duplicate", "quarantined", "confirmation_forwarded",
           "over_quota", "ready", "delivered", "failed")
_NOTICES = ("pending", "sent", "failed")


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _check(table: str, name: str, condition: str) -> None:
    # batch mode: SQLite rebuilds the table to change a CHECK constraint
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
        batch.create_check_constraint(op.f(f"ck_{table}_{name}"), condition)


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("send_after", sa.DateTime(timezone=True), nullable=True))
    _check("inbound_emails", "state_valid", _in("state", (*_STATES, "waiting")))
    _check("notifications", "status_valid", _in("status", (*_NOTICES, "deferred", "withdrawn")))


def downgrade() -> None:
    op.execute("UPDATE inbound_emails SET state = 'failed' WHERE state = 'waiting'")
    op.execute("UPDATE notifications SET status = 'failed' WHERE status IN ('deferred', 'withdrawn')")
    _check("notifications", "status_valid", _in("status", _NOTICES))
    _check("inbound_emails", "state_valid", _in("state", _STATES))
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("send_after")
