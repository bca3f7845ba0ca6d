"""Closing the loop with Amazon: delivery tokens and variants, rejected deliveries, Kindle checks, notices.

Revision ID: 0005
Revises: 0004_unreadable
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004_unreadable"
branch_labels = None
depends_on = None

_STATES = "'received', 'parsed', 'routed', 'unroutable', 'duplicate', 'quarantined', 'unreadable', 'confirmation_forwarded', 'over_quota', 'ready', 'delivered', 'failed', 'waiting'"


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("variant", sa.String(length=16), nullable=False, server_default="standard"))
        batch.add_column(sa.Column("token", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("rejection_cause", sa.String(length=16), nullable=True))
        batch.drop_constraint(op.f("uq_deliveries_item_kind_item_id_part_recipient"), type_="unique")
        batch.create_unique_constraint(
            "uq_deliveries_item_kind_item_id_part_recipient_variant",
            ["item_kind", "item_id", "part", "recipient", "variant"],
        )
        batch.create_unique_constraint(op.f("uq_deliveries_token"), ["token"])
        batch.drop_constraint(op.f("ck_deliveries_status_valid"), type_="check")
        batch.create_check_constraint(op.f("ck_deliveries_status_valid"), "status IN ('claimed', 'sent', 'failed', 'rejected')")
        batch.drop_constraint(op.f("ck_deliveries_item_kind_valid"), type_="check")
        batch.create_check_constraint(op.f("ck_deliveries_item_kind_valid"), "item_kind IN ('newsletter', 'digest', 'kindle_check')")
        batch.create_check_constraint(op.f("ck_deliveries_variant_valid"), "variant IN ('standard', 'safe_mode', 'resend')")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("variant", server_default=None)
    with op.batch_alter_table("kindle_devices") as batch:
        batch.add_column(sa.Column("check_state", sa.String(length=16), nullable=False, server_default="unchecked"))
        batch.add_column(sa.Column("check_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(
            "check_state_valid", "check_state IN ('unchecked', 'pending', 'verified', 'rejected', 'unconfirmed')"
        )
    with op.batch_alter_table("kindle_devices") as batch:
        batch.alter_column("check_state", server_default=None)
    with op.batch_alter_table("inbound_emails") as batch:
        batch.drop_constraint(op.f("ck_inbound_emails_state_valid"), type_="check")
        batch.create_check_constraint(op.f("ck_inbound_emails_state_valid"), f"state IN ({_STATES}, 'kindle_notice')")
    op.create_table(
        "kindle_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inbound_email_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=True),
        sa.Column("authentic", sa.Boolean(), nullable=False),
        sa.Column("trust_reason", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name=op.f("fk_kindle_notices_delivery_id_deliveries"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["inbound_email_id"], ["inbound_emails.id"],
            name=op.f("fk_kindle_notices_inbound_email_id_inbound_emails"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kindle_notices")),
        sa.UniqueConstraint("inbound_email_id", name=op.f("uq_kindle_notices_inbound_email_id")),
    )
    op.create_index(op.f("ix_kindle_notices_delivery_id"), "kindle_notices", ["delivery_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_kindle_notices_delivery_id"), table_name="kindle_notices")
    op.drop_table("kindle_notices")
    with op.batch_alter_table("inbound_emails") as batch:
        batch.drop_constraint(op.f("ck_inbound_emails_state_valid"), type_="check")
        batch.create_check_constraint(op.f("ck_inbound_emails_state_valid"), f"state IN ({_STATES})")
    with op.batch_alter_table("kindle_devices") as batch:
        batch.drop_constraint(op.f("ck_kindle_devices_check_state_valid"), type_="check")
        batch.drop_column("checked_at")
        batch.drop_column("check_reason")
        batch.drop_column("check_state")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(op.f("ck_deliveries_variant_valid"), type_="check")
        batch.drop_constraint(op.f("ck_deliveries_item_kind_valid"), type_="check")
        batch.create_check_constraint(op.f("ck_deliveries_item_kind_valid"), "item_kind IN ('newsletter', 'digest')")
        batch.drop_constraint(op.f("ck_deliveries_status_valid"), type_="check")
        batch.create_check_constraint(op.f("ck_deliveries_status_valid"), "status IN ('claimed', 'sent', 'failed')")
        batch.drop_constraint(op.f("uq_deliveries_token"), type_="unique")
        batch.drop_constraint(op.f("uq_deliveries_item_kind_item_id_part_recipient_variant"), type_="unique")
        batch.create_unique_constraint(
            "uq_deliveries_item_kind_item_id_part_recipient", ["item_kind", "item_id", "part", "recipient"]
        )
        batch.drop_column("rejection_cause")
        batch.drop_column("token")
        batch.drop_column("variant")
