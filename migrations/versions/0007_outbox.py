"""the outbox: messages the bot promised, delivered after the commit; when each deal post
was last rendered

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("due_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("lease_until", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expired_leases", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_key")),
    )
    op.create_index("ix_outbox_status_due", "outbox", ["status", "due_at"], unique=False)
    op.create_index("ix_outbox_chat_id", "outbox", ["chat_id"], unique=False)
    op.create_index("ix_outbox_status_sent_at", "outbox", ["status", "sent_at"], unique=False)
    with op.batch_alter_table("deal_posts") as batch:
        batch.add_column(
            sa.Column("rendered_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    # Posts sent so far show their deal's current version as far as anyone knows: only
    # changes from now on make a post stale (no re-render of every old post at start).
    op.execute(
        "UPDATE deal_posts SET rendered_at = "
        "(SELECT deals.updated_at FROM deals WHERE deals.id = deal_posts.deal_id) "
        "WHERE message_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("deal_posts") as batch:
        batch.drop_column("rendered_at")
    op.drop_index("ix_outbox_status_sent_at", table_name="outbox")
    op.drop_index("ix_outbox_chat_id", table_name="outbox")
    op.drop_index("ix_outbox_status_due", table_name="outbox")
    op.drop_table("outbox")
