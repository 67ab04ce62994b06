"""a 查无 item that opens after a like one was resolved names it: the answer published then did not reach the search

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kb_gaps") as batch:
        batch.add_column(sa.Column("recurs_gap_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kb_gaps") as batch:
        batch.drop_column("recurs_gap_id")
