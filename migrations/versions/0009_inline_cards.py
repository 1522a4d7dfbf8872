"""inline cards: deal cards sent through inline mode, who may join a deal, where an order came from

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("audience", sa.String(length=8), nullable=False, server_default="members")
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(length=8), nullable=True))
    op.create_table(
        "inline_cards",
        sa.Column("inline_message_id", sa.String(length=256), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("share_code", sa.String(length=32), nullable=True),
        sa.Column("sharer_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rendered_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dropped_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_inline_cards_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_inline_cards_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("inline_message_id", name=op.f("pk_inline_cards")),
    )
    op.create_index("ix_inline_cards_deal_id", "inline_cards", ["deal_id"], unique=False)
    op.create_index(
        "ix_inline_cards_group_created_at", "inline_cards", ["group_id", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_inline_cards_group_created_at", table_name="inline_cards")
    op.drop_index("ix_inline_cards_deal_id", table_name="inline_cards")
    op.drop_table("inline_cards")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("via")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_column("audience")
