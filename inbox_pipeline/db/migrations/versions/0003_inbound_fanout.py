"""Inbound emails fan out: one row per user among the envelope recipients (``fanout_of_id``).

Revision ID: 0003_inbound_fanout
Revises: 0002
Create Date: 2026-12-03 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_inbound_fanout'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_emails') as batch:
        batch.add_column(sa.Column('fanout_of_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f('fk_inbound_emails_fanout_of_id_inbound_emails'), 'inbound_emails', ['fanout_of_id'], ['id'],
            ondelete='CASCADE',
        )


def downgrade() -> None:
    with op.batch_alter_table('inbound_emails') as batch:
        batch.drop_constraint(op.f('fk_inbound_emails_fanout_of_id_inbound_emails'), type_='foreignkey')
        batch.drop_column('fanout_of_id')
