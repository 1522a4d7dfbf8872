"""payments: how a deal is paid, payments by charge id, waitlists, terms texts

Revision ID: 0010
Revises: 0009
"""

from alembic import op
import sqlalchemy as sa
import models.base


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "waitlist",
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("served_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_waitlist_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_waitlist_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deal_id", "user_id", name=op.f("pk_waitlist")),
    )
    with op.batch_alter_table("waitlist", schema=None) as batch_op:
        batch_op.create_index(
            "ix_waitlist_deal_served_created", ["deal_id", "served_at", "created_at"], unique=False
        )

    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("charge_id", sa.String(length=255), nullable=False),
        sa.Column("provider_charge_id", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("refund", sa.String(length=8), nullable=False),
        sa.Column("refund_reason", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("refunded_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_payments_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("charge_id", name=op.f("uq_payments_charge_id")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_payments_order_id", ["order_id"], unique=False)

    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pay_method", sa.String(length=8), server_default="cash", nullable=False)
        )
        batch_op.add_column(
            sa.Column("digital", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("pay_hours", sa.Integer(), server_default="24", nullable=False)
        )
        batch_op.add_column(
            sa.Column("hold_minutes", sa.Integer(), server_default="15", nullable=False)
        )

    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("terms_text", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("paysupport_text", sa.Text(), server_default="", nullable=False)
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("paid_amount", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("pay_by", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("invoice_no", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index("ix_orders_pay_by", ["pay_by"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_pay_by")
        batch_op.drop_column("invoice_no")
        batch_op.drop_column("pay_by")
        batch_op.drop_column("paid_amount")

    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("paysupport_text")
        batch_op.drop_column("terms_text")

    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_column("hold_minutes")
        batch_op.drop_column("pay_hours")
        batch_op.drop_column("digital")
        batch_op.drop_column("pay_method")

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_order_id")
        batch_op.drop_index("ix_payments_created_at")

    op.drop_table("payments")
    with op.batch_alter_table("waitlist", schema=None) as batch_op:
        batch_op.drop_index("ix_waitlist_deal_served_created")

    op.drop_table("waitlist")
