"""The worker runs' work queue: queue and claim columns on inbound_emails.

Revision ID: 0008_work_queue
Revises: 0007_send_pace
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0008_work_queue"
down_revision = "0007_send_pace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_emails") as batch:
        batch.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("fair_key", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_inbound_emails_queued_at"), "inbound_emails", ["queued_at"])
    op.create_index(op.f("ix_inbound_emails_claimed_by"), "inbound_emails", ["claimed_by"])
    op.create_index("ix_inbound_emails_fair_key_claimed_at", "inbound_emails", ["fair_key", "claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_emails_fair_key_claimed_at", table_name="inbound_emails")
    op.drop_index(op.f("ix_inbound_emails_claimed_by"), table_name="inbound_emails")
    op.drop_index(op.f("ix_inbound_emails_queued_at"), table_name="inbound_emails")
    with op.batch_alter_table("inbound_emails") as batch:
        for column in ("not_before", "attempts", "claimed_at", "claimed_by", "fair_key", "queued_at"):
            batch.drop_column(column)
