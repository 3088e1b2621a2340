"""overdue and bottom-up ratings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:53:12.105006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("evaluated_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overdue_counted", sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table("unit_day_stats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overdue", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("bottom_up_ratings", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("bottom_up_score_sum", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("unit_day_stats", schema=None) as batch_op:
        batch_op.drop_column("bottom_up_score_sum")
        batch_op.drop_column("bottom_up_ratings")
        batch_op.drop_column("overdue")

    with op.batch_alter_table("evaluated_cases", schema=None) as batch_op:
        batch_op.drop_column("overdue_counted")
