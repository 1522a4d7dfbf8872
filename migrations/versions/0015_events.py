"""offline events

Revision ID: 0015_events
Revises: 0014_lotteries

"""
from alembic import op
import sqlalchemy as sa
import models.base


revision = '0015_events'
down_revision = '0014_lotteries'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_event', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table('offline_events',
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=False),
    sa.Column('starts_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reminded_day_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminded_soon_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], name=op.f('fk_offline_events_deal_id_deals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_offline_events_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('deal_id', name=op.f('pk_offline_events'))
    )
    with op.batch_alter_table('offline_events', schema=None) as batch_op:
        batch_op.create_index('ix_offline_events_group_id', ['group_id'], unique=False)
        batch_op.create_index('ix_offline_events_starts_at', ['starts_at'], unique=False)

    op.create_table('event_checkins',
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('checked_by', sa.BigInteger(), nullable=False),
    sa.Column('checked_in_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], name=op.f('fk_event_checkins_deal_id_deals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_event_checkins_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_event_checkins_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_event_checkins'))
    )
    with op.batch_alter_table('event_checkins', schema=None) as batch_op:
        batch_op.create_index('ix_event_checkins_deal_id', ['deal_id'], unique=False)
        batch_op.create_index('ix_event_checkins_group_checked', ['group_id', 'checked_in_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('event_checkins', schema=None) as batch_op:
        batch_op.drop_index('ix_event_checkins_group_checked')
        batch_op.drop_index('ix_event_checkins_deal_id')
    op.drop_table('event_checkins')
    with op.batch_alter_table('offline_events', schema=None) as batch_op:
        batch_op.drop_index('ix_offline_events_starts_at')
        batch_op.drop_index('ix_offline_events_group_id')
    op.drop_table('offline_events')
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_column('is_event')
