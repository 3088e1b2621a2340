"""cases by time received index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 11:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        # Case lists, newest first: a page is read backwards off the index instead of sorting every matching case.
        batch_op.create_index("ix_cases_received", ["received_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_received")
