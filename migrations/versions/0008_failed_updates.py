"""failed updates: updates that failed for good or were set aside after their retries

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failed_updates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("update_type", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_updates")),
        sa.UniqueConstraint("bot_id", "update_id", name=op.f("uq_failed_updates_bot_id_update_id")),
    )
    op.create_index("ix_failed_updates_last_at", "failed_updates", ["last_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_failed_updates_last_at", table_name="failed_updates")
    op.drop_table("failed_updates")
