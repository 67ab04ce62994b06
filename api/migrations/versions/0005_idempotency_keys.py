"""work orders remember the client's Idempotency-Key, so a retried create returns the first order

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.add_column(sa.Column("client_key", sa.String(length=240), nullable=True))
        batch.create_unique_constraint("uq_work_orders_client_key", ["client_key"])


def downgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_constraint("uq_work_orders_client_key", type_="unique")
        batch.drop_column("client_key")
