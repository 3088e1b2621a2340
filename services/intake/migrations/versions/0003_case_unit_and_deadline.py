"""case unit and completion deadline mirrored onto reports (for Open311)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:32:44.157642
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("primary_unit", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("complete_deadline", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_reports_received_at"), ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reports_received_at"))
        batch_op.drop_column("complete_deadline")
        batch_op.drop_column("primary_unit")
