"""Inbound emails may end ``unreadable``: input that is not an email.

Revision ID: 0004_unreadable
Revises: 0003_inbound_fanout
Create Date: 2026-12-03 16:55:00
"""

from __future__ import annotations

from alembic import op

revision = "0004_unreadable"
down_revision = "0003_inbound_fanout"
branch_labels = None
depends_on = None

_BEFORE = (
    "received", "parsed", "routed", "unroutable", "duplicate", "quarantined", "confirmation_forwarded",
    "over_quota", "ready", "delivered", "failed", "waiting",
)
_AFTER = _BEFORE[:6] + ("unreadable",) + _BEFORE[6:]


def _state_check(states: tuple[str, ...]) -> str:
    return "state IN (" + ", ".join(f"'{s}'" for s in states) + ")"


def _replace_check(states: tuple[str, ...]) -> None:
    with op.batch_alter_table("inbound_emails") as batch:
        batch.drop_constraint(op.f("ck_inbound_emails_state_valid"), type_="check")
        batch.create_check_constraint(op.f("ck_inbound_emails_state_valid"), _state_check(states))


def upgrade() -> None:
    _replace_check(_AFTER)


def downgrade() -> None:
    op.execute("UPDATE inbound_emails SET state = 'failed' WHERE state = 'unreadable'")
    _replace_check(_BEFORE)
