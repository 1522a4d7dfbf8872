"""reviews

Revision ID: 0016_reviews
Revises: 0015_events

"""
from alembic import op
import sqlalchemy as sa
import models.base


revision = '0016_reviews'
down_revision = '0015_events'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('product_key', sa.Integer(), nullable=True))
        batch_op.create_index('ix_deals_product_key', ['product_key'], unique=False)

    op.create_table('reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('product_key', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reply_text', sa.Text(), nullable=True),
    sa.Column('replied_by', sa.BigInteger(), nullable=True),
    sa.Column('replied_at', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('rating >= 1 AND rating <= 5', name=op.f('ck_reviews_review_rating_in_range')),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], name=op.f('fk_reviews_deal_id_deals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_reviews_group_id_groups'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_reviews_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews')),
    sa.UniqueConstraint('order_id', name=op.f('uq_reviews_order_id'))
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index('ix_reviews_deal_id', ['deal_id'], unique=False)
        batch_op.create_index('ix_reviews_group_created_at', ['group_id', 'created_at'], unique=False)
        batch_op.create_index('ix_reviews_product_key', ['product_key'], unique=False)
        batch_op.create_index('ix_reviews_user_id', ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_reviews_user_id')
        batch_op.drop_index('ix_reviews_product_key')
        batch_op.drop_index('ix_reviews_group_created_at')
        batch_op.drop_index('ix_reviews_deal_id')

    op.drop_table('reviews')
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_index('ix_deals_product_key')
        batch_op.drop_column('product_key')
