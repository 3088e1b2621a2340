"""duplicates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:00:56.641356
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reporter_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("merged_into", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("merged_cases", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.create_index(batch_op.f("ix_cases_reporter_key"), ["reporter_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_reporter_key"))
        batch_op.drop_column("merged_cases")
        batch_op.drop_column("merged_into")
        batch_op.drop_column("reporter_key")
