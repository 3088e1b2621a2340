"""initial dispatch schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 11:31:14.074603
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("case_number", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("grid_code", sa.String(length=64), nullable=True),
        sa.Column("reporter_phone_masked", sa.String(length=32), nullable=True),
        sa.Column("requested_departments", sa.JSON(), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("domain_code", sa.String(length=64), nullable=True),
        sa.Column("category_code", sa.String(length=32), nullable=True),
        sa.Column("kind_code", sa.String(length=32), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("judge_method", sa.String(length=32), nullable=True),
        sa.Column("judge_reasons", sa.JSON(), nullable=False),
        sa.Column("territory", sa.JSON(), nullable=True),
        sa.Column("street_code", sa.String(length=32), nullable=True),
        sa.Column("primary_unit", sa.String(length=64), nullable=True),
        sa.Column("cooperating_units", sa.JSON(), nullable=False),
        sa.Column("transfer_to", sa.String(length=8), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("sign_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("complete_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_basis", sa.JSON(), nullable=False),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_number"),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_category_code"), ["category_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_kind_code"), ["kind_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_primary_unit"), ["primary_unit"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_street_code"), ["street_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("aggregatetype", sa.String(length=64), nullable=False),
        sa.Column("aggregateid", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_unpublished", ["published_at", "seq"], unique=False)

    op.create_table(
        "case_trail",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("case_trail", schema=None) as batch_op:
        batch_op.create_index("ix_case_trail_case_seq", ["case_id", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_trail", schema=None) as batch_op:
        batch_op.drop_index("ix_case_trail_case_seq")

    op.drop_table("case_trail")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_unpublished")

    op.drop_table("outbox")
    op.drop_table("inbox")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_updated_at"))
        batch_op.drop_index(batch_op.f("ix_cases_street_code"))
        batch_op.drop_index(batch_op.f("ix_cases_status"))
        batch_op.drop_index(batch_op.f("ix_cases_primary_unit"))
        batch_op.drop_index(batch_op.f("ix_cases_kind_code"))
        batch_op.drop_index(batch_op.f("ix_cases_category_code"))

    op.drop_table("cases")
