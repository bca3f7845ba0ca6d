"""Initial schema and the seeded plans (free 50/month, pro 1000/month, unlimited).

Revision ID: 0001
Revises:
Create Date: 2026-11-24 13:26:25.202471
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    plans = op.create_table('plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('monthly_limit', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('monthly_limit IS NULL OR monthly_limit >= 0', name=op.f('ck_plans_limit_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('name', name=op.f('uq_plans_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('delivery_mode', sa.String(length=16), nullable=False),
    sa.Column('delivery_hour', sa.Integer(), nullable=True),
    sa.Column('delivery_weekday', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(delivery_mode = 'instant' AND delivery_hour IS NULL AND delivery_weekday IS NULL) OR (delivery_mode = 'daily' AND delivery_hour BETWEEN 0 AND 23 AND delivery_weekday IS NULL) OR (delivery_mode = 'weekly' AND delivery_hour BETWEEN 0 AND 23 AND delivery_weekday BETWEEN 0 AND 6)", name=op.f('ck_users_delivery_consistent')),
    sa.CheckConstraint("delivery_mode IN ('instant', 'daily', 'weekly')", name=op.f('ck_users_delivery_mode_valid')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_users_plan_id_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('digests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('period_key', sa.String(length=32), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('epub_keys', sa.JSON(), nullable=True),
    sa.Column('epub_bytes', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'empty', 'ready', 'delivered', 'failed')", name=op.f('ck_digests_status_valid')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_digests_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digests')),
    sa.UniqueConstraint('user_id', 'period_key', name=op.f('uq_digests_user_id_period_key'))
    )
    op.create_table('inbound_addresses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_inbound_addresses_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_addresses')),
    sa.UniqueConstraint('address', name=op.f('uq_inbound_addresses_address'))
    )
    op.create_index(op.f('ix_inbound_addresses_user_id'), 'inbound_addresses', ['user_id'], unique=False)

    op.create_table('kindle_devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_kindle_devices_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kindle_devices')),
    sa.UniqueConstraint('user_id', 'email', name=op.f('uq_kindle_devices_user_id_email'))
    )
    op.create_index(op.f('ix_kindle_devices_user_id'), 'kindle_devices', ['user_id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('dedup_key', sa.String(length=255), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f('ck_notifications_status_valid')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('user_id', 'kind', 'dedup_key', name=op.f('uq_notifications_user_id_kind_dedup_key'))
    )
    op.create_table('usage_counters',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_usage_counters_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'period', name=op.f('pk_usage_counters'))
    )
    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_kind', sa.String(length=16), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('retryable', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('provider_message_id', sa.String(length=998), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("item_kind IN ('newsletter', 'digest')", name=op.f('ck_deliveries_item_kind_valid')),
    sa.CheckConstraint("status IN ('claimed', 'sent', 'failed')", name=op.f('ck_deliveries_status_valid')),
    sa.ForeignKeyConstraint(['device_id'], ['kindle_devices.id'], name=op.f('fk_deliveries_device_id_kindle_devices'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_deliveries_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('item_kind', 'item_id', 'part', 'recipient', name=op.f('uq_deliveries_item_kind_item_id_part_recipient'))
    )
    op.create_index(op.f('ix_deliveries_provider_message_id'), 'deliveries', ['provider_message_id'], unique=False)
    op.create_index('ix_deliveries_status_claimed_at', 'deliveries', ['status', 'claimed_at'], unique=False)

    op.create_table('inbound_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('storage_key', sa.String(length=1024), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('sender', sa.String(length=998), nullable=True),
    sa.Column('recipients', sa.JSON(), nullable=True),
    sa.Column('content_sha256', sa.String(length=64), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('address_id', sa.Integer(), nullable=True),
    sa.Column('dedup_message_id', sa.String(length=998), nullable=True),
    sa.Column('dedup_content_sha256', sa.String(length=64), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('received', 'parsed', 'routed', 'unroutable', 'duplicate', 'quarantined', 'confirmation_forwarded', 'over_quota', 'ready', 'delivered', 'failed')", name=op.f('ck_inbound_emails_state_valid')),
    sa.ForeignKeyConstraint(['address_id'], ['inbound_addresses.id'], name=op.f('fk_inbound_emails_address_id_inbound_addresses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['inbound_emails.id'], name=op.f('fk_inbound_emails_duplicate_of_id_inbound_emails'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_inbound_emails_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_emails')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_inbound_emails_storage_key')),
    sa.UniqueConstraint('user_id', 'dedup_content_sha256', name=op.f('uq_inbound_emails_user_id_dedup_content_sha256')),
    sa.UniqueConstraint('user_id', 'dedup_message_id', name=op.f('uq_inbound_emails_user_id_dedup_message_id'))
    )
    op.create_index(op.f('ix_inbound_emails_created_at'), 'inbound_emails', ['created_at'], unique=False)
    op.create_index(op.f('ix_inbound_emails_message_id'), 'inbound_emails', ['message_id'], unique=False)
    op.create_index(op.f('ix_inbound_emails_state'), 'inbound_emails', ['state'], unique=False)
    op.create_index(op.f('ix_inbound_emails_user_id'), 'inbound_emails', ['user_id'], unique=False)

    op.create_table('newsletters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inbound_email_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('address_id', sa.Integer(), nullable=True),
    sa.Column('sender_name', sa.String(length=998), nullable=False),
    sa.Column('sender_email', sa.String(length=998), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('raw_key', sa.String(length=1024), nullable=False),
    sa.Column('raw_html', sa.Text(), nullable=True),
    sa.Column('platform', sa.String(length=32), nullable=True),
    sa.Column('language', sa.String(length=35), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('epub_key', sa.String(length=1024), nullable=True),
    sa.Column('epub_bytes', sa.BigInteger(), nullable=True),
    sa.Column('words', sa.Integer(), nullable=True),
    sa.Column('images', sa.Integer(), nullable=True),
    sa.Column('reading_minutes', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'ready', 'held_for_digest', 'in_digest', 'delivered', 'over_quota', 'no_device', 'failed')", name=op.f('ck_newsletters_status_valid')),
    sa.ForeignKeyConstraint(['address_id'], ['inbound_addresses.id'], name=op.f('fk_newsletters_address_id_inbound_addresses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['inbound_email_id'], ['inbound_emails.id'], name=op.f('fk_newsletters_inbound_email_id_inbound_emails'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_newsletters_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_newsletters')),
    sa.UniqueConstraint('inbound_email_id', name=op.f('uq_newsletters_inbound_email_id'))
    )
    op.create_index('ix_newsletters_user_id_status', 'newsletters', ['user_id', 'status'], unique=False)

    op.create_table('digest_members',
    sa.Column('digest_id', sa.Integer(), nullable=False),
    sa.Column('newsletter_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('volume', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], name=op.f('fk_digest_members_digest_id_digests'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['newsletter_id'], ['newsletters.id'], name=op.f('fk_digest_members_newsletter_id_newsletters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('digest_id', 'position', name=op.f('pk_digest_members')),
    sa.UniqueConstraint('newsletter_id', name=op.f('uq_digest_members_newsletter_id'))
    )

    now = datetime.now(timezone.utc)
    op.bulk_insert(
        plans,
        [
            {"name": "free", "monthly_limit": 50, "created_at": now},
            {"name": "pro", "monthly_limit": 1000, "created_at": now},
            {"name": "unlimited", "monthly_limit": None, "created_at": now},
        ],
    )


def downgrade() -> None:
    op.drop_table('digest_members')
    op.drop_index('ix_newsletters_user_id_status', table_name='newsletters')

    op.drop_table('newsletters')
    op.drop_index(op.f('ix_inbound_emails_user_id'), table_name='inbound_emails')
    op.drop_index(op.f('ix_inbound_emails_state'), table_name='inbound_emails')
    op.drop_index(op.f('ix_inbound_emails_message_id'), table_name='inbound_emails')
    op.drop_index(op.f('ix_inbound_emails_created_at'), table_name='inbound_emails')

    op.drop_table('inbound_emails')
    op.drop_index('ix_deliveries_status_claimed_at', table_name='deliveries')
    op.drop_index(op.f('ix_deliveries_provider_message_id'), table_name='deliveries')

    op.drop_table('deliveries')
    op.drop_table('usage_counters')
    op.drop_table('notifications')
    op.drop_index(op.f('ix_kindle_devices_user_id'), table_name='kindle_devices')

    op.drop_table('kindle_devices')
    op.drop_index(op.f('ix_inbound_addresses_user_id'), table_name='inbound_addresses')

    op.drop_table('inbound_addresses')
    op.drop_table('digests')
    op.drop_table('users')
    op.drop_table('plans')
