"""webapp: the Mini App storefront's opaque code per group

Revision ID: 0018_webapp
Revises: 0017_moderation

"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0018_webapp"
down_revision = "0017_moderation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("shop_code", sa.String(length=16), nullable=True))
    groups = sa.table("groups", sa.column("id", sa.Integer), sa.column("shop_code", sa.String))
    conn = op.get_bind()
    for (group_id,) in conn.execute(sa.select(groups.c.id)).all():
        conn.execute(
            groups.update()
            .where(groups.c.id == group_id)
            .values(shop_code=secrets.token_urlsafe(9))
        )
    with op.batch_alter_table("groups") as batch:
        batch.create_unique_constraint(op.f("uq_groups_shop_code"), ["shop_code"])


def downgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.drop_constraint(op.f("uq_groups_shop_code"), type_="unique")
        batch.drop_column("shop_code")
