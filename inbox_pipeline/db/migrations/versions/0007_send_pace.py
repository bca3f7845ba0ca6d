"""Paced sending: the one send-rate limiter row all runs share, with its counters.

Revision ID: 0007_send_pace
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_send_pace"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_pace",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("sends", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("held_seconds", sa.Float(), nullable=False),
        sa.Column("refused", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_send_pace")),
    )
    # The one limiter's row, there before the first send (every reservation locks it).
    op.execute(
        "INSERT INTO send_pace (name, state, sends, held, held_seconds, refused, updated_at) "
        "VALUES ('mail', '{}', 0, 0, 0, 0, CURRENT_TIMESTAMP)"
    )


def downgrade() -> None:
    op.drop_table("send_pace")
