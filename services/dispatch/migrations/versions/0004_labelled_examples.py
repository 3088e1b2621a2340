"""labelled examples

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:02:48.656760
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "labelled_examples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("kind_code", sa.String(length=32), nullable=False),
        sa.Column("machine_kind_code", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("labelled_examples", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_labelled_examples_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_labelled_examples_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("labelled_examples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_labelled_examples_created_at"))
        batch_op.drop_index(batch_op.f("ix_labelled_examples_case_id"))

    op.drop_table("labelled_examples")
