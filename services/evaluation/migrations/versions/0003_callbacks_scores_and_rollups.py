"""callbacks, case scores, roll-ups by level and kind, places and re-routes

The per-unit, per-day counters of unit_day_stats move into rollups (department and city rows, kind "*", by day
and by month); cases already dispatched get one assignment rebuilt from what evaluation knew of them, so call-backs and
later events keep counting. Counters from before this revision have no kind, territory or handling-time split.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:15:20.649143
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, time

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INT_COUNTERS = (
    "dispatched",
    "signed",
    "signed_on_time",
    "completed",
    "completed_on_time",
    "callbacks",
    "callbacks_counted",
    "resolved",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "not_unit_fault",
    "unreachable",
    "reopened",
    "returned",
    "returned_without_cause",
    "extension_requested",
    "extended",
    "overdue",
    "closed",
    "scored",
    "bottom_up_ratings",
    "bottom_up_score_sum",
    "handling_count",
)
BUCKETS = tuple(f"h{i:02d}" for i in range(24))
FLOAT_COUNTERS = ("score_sum", "handling_hours_sum")
# unit_day_stats column -> rollups columns
CARRIED = {
    "dispatched": ("dispatched",),
    "signed": ("signed",),
    "signed_on_time": ("signed_on_time",),
    "completed": ("completed",),
    "completed_on_time": ("completed_on_time",),
    "feedback": ("callbacks", "callbacks_counted"),
    "resolved": ("resolved",),
    "satisfied": ("satisfied",),
    "basically_satisfied": ("basically_satisfied",),
    "dissatisfied": ("dissatisfied",),
    "reopened": ("reopened",),
    "overdue": ("overdue",),
    "bottom_up_ratings": ("bottom_up_ratings",),
    "bottom_up_score_sum": ("bottom_up_score_sum",),
}


def upgrade() -> None:
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("respondent", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("callback_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callback_attempts_case_id"), ["case_id"], unique=False)

    op.create_table(
        "case_reroutes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("case_number", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("from_kind", sa.String(length=32), nullable=True),
        sa.Column("to_kind", sa.String(length=32), nullable=True),
        sa.Column("from_unit", sa.String(length=64), nullable=True),
        sa.Column("to_unit", sa.String(length=64), nullable=True),
        sa.Column("return_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_reroutes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_reroutes_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_reroutes_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_reroutes_from_kind"), ["from_kind"], unique=False)

    op.create_table(
        "report_places",
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("place_key", sa.String(length=320), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )
    with op.batch_alter_table("report_places", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_places_place_key"), ["place_key"], unique=False)

    op.create_table(
        "rollups",
        sa.Column("span", sa.String(length=8), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind_code", sa.String(length=32), nullable=False),
        sa.Column("category_code", sa.String(length=32), server_default="*", nullable=False),
        *(sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in (*INT_COUNTERS, *BUCKETS)),
        *(sa.Column(name, sa.Float(), server_default="0", nullable=False) for name in FLOAT_COUNTERS),
        sa.PrimaryKeyConstraint("span", "level", "period_start", "code", "kind_code"),
    )
    with op.batch_alter_table("rollups", schema=None) as batch_op:
        batch_op.create_index("ix_rollups_code", ["span", "level", "code", "period_start"], unique=False)

    _carry_day_stats()
    op.drop_table("unit_day_stats")
    with op.batch_alter_table("evaluated_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("judged_kind_code", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("community_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("urgency", sa.String(length=16), server_default="normal", nullable=False))
        batch_op.add_column(sa.Column("merged_into", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("assignments", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("callback_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("outcome", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("score_breakdown", sa.JSON(), nullable=True))

    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(sa.Column("respondent", sa.String(length=16), server_default="citizen", nullable=False))
        batch_op.add_column(sa.Column("outcome", sa.String(length=16), server_default="answered", nullable=False))
        batch_op.add_column(sa.Column("fault", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("fault_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("counted", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.alter_column("resolved", existing_type=sa.BOOLEAN(), nullable=True)
        batch_op.alter_column("satisfaction", existing_type=sa.VARCHAR(length=24), nullable=True)

    _rebuild_assignments()
    for source, respondent in (("grid", "grid_worker"), ("town", "town")):
        op.execute(
            sa.text(
                "UPDATE feedback SET respondent = :respondent "
                "WHERE case_id IN (SELECT case_id FROM evaluated_cases WHERE source = :source)"
            ).bindparams(respondent=respondent, source=source)
        )


def _carry_day_stats() -> None:
    """Copy unit_day_stats into rollups: department and city rows without a kind, by day and summed by month."""
    old = sa.table(
        "unit_day_stats",
        sa.column("unit_code", sa.String()),
        sa.column("day", sa.Date()),
        *(sa.column(name, sa.Integer()) for name in CARRIED),
    )
    new = sa.table(
        "rollups",
        sa.column("span", sa.String()),
        sa.column("level", sa.String()),
        sa.column("period_start", sa.Date()),
        sa.column("code", sa.String()),
        sa.column("kind_code", sa.String()),
        sa.column("category_code", sa.String()),
        *(sa.column(name, sa.Integer()) for name in INT_COUNTERS),
    )
    rows: dict[tuple[str, str, date, str], dict[str, int]] = {}
    for row in op.get_bind().execute(sa.select(old)).mappings():
        if not row["unit_code"]:
            continue
        day: date = row["day"]
        for span, start in (("day", day), ("month", day.replace(day=1))):
            for level, code in (("department", row["unit_code"]), ("city", "city")):
                counters = rows.setdefault((span, level, start, code), dict.fromkeys(INT_COUNTERS, 0))
                for column, targets in CARRIED.items():
                    for target in targets:
                        counters[target] += row[column] or 0
    if rows:
        op.bulk_insert(
            new,
            [
                {
                    "span": span,
                    "level": level,
                    "period_start": start,
                    "code": code,
                    "kind_code": "*",
                    "category_code": "*",
                    **counters,
                }
                for (span, level, start, code), counters in sorted(rows.items())
            ],
        )


def _rebuild_assignments() -> None:
    """Give each dispatched case one assignment holding the counters unit_day_stats already has for it."""
    cases = sa.table(
        "evaluated_cases",
        sa.column("case_id", sa.String()),
        sa.column("primary_unit", sa.String()),
        sa.column("kind_code", sa.String()),
        sa.column("category_code", sa.String()),
        sa.column("period_day", sa.Date()),
        sa.column("dispatched_at", sa.DateTime(timezone=True)),
        sa.column("signed_at", sa.DateTime(timezone=True)),
        sa.column("completed_at", sa.DateTime(timezone=True)),
        sa.column("round", sa.Integer()),
        sa.column("overdue_counted", sa.Boolean()),
        sa.column("assignments", sa.JSON()),
    )
    bind = op.get_bind()
    query = sa.select(cases).where(cases.c.primary_unit.is_not(None), cases.c.period_day.is_not(None))
    for row in bind.execute(query).mappings().all():
        at: datetime = row["dispatched_at"] or datetime.combine(row["period_day"], time())
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        counters = {
            "dispatched": 1,
            "signed": int(row["signed_at"] is not None),
            "completed": int(row["completed_at"] is not None),
            "reopened": row["round"] or 0,
            "overdue": int(bool(row["overdue_counted"])),
        }
        assignment = {
            "unit": row["primary_unit"],
            "kind": row["kind_code"],
            "category": row["category_code"],
            "day": row["period_day"].isoformat(),
            "dispatched_at": at.isoformat(),
            "legacy": True,
            "counters": {name: value for name, value in counters.items() if value},
        }
        bind.execute(cases.update().where(cases.c.case_id == row["case_id"]).values(assignments=[assignment]))


def _carry_back() -> None:
    """Sum the department rows by day back into unit_day_stats."""
    new = sa.table(
        "rollups",
        sa.column("span", sa.String()),
        sa.column("level", sa.String()),
        sa.column("period_start", sa.Date()),
        sa.column("code", sa.String()),
        *(sa.column(name, sa.Integer()) for name in INT_COUNTERS),
    )
    old = sa.table(
        "unit_day_stats",
        sa.column("unit_code", sa.String()),
        sa.column("day", sa.Date()),
        *(sa.column(name, sa.Integer()) for name in CARRIED),
    )
    sums = [sa.func.sum(new.c[targets[-1]]).label(column) for column, targets in CARRIED.items()]
    query = (
        sa.select(new.c.code, new.c.period_start, *sums)
        .where(new.c.span == "day", new.c.level == "department")
        .group_by(new.c.code, new.c.period_start)
    )
    rows = [
        {"unit_code": row["code"], "day": row["period_start"], **{c: int(row[c] or 0) for c in CARRIED}}
        for row in op.get_bind().execute(query).mappings()
    ]
    if rows:
        op.bulk_insert(old, rows)


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.alter_column("satisfaction", existing_type=sa.VARCHAR(length=24), nullable=False)
        batch_op.alter_column("resolved", existing_type=sa.BOOLEAN(), nullable=False)
        batch_op.drop_column("attempts")
        batch_op.drop_column("counted")
        batch_op.drop_column("fault_reason")
        batch_op.drop_column("fault")
        batch_op.drop_column("outcome")
        batch_op.drop_column("respondent")

    with op.batch_alter_table("evaluated_cases", schema=None) as batch_op:
        batch_op.drop_column("score_breakdown")
        batch_op.drop_column("score")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("outcome")
        batch_op.drop_column("callback_attempts")
        batch_op.drop_column("assignments")
        batch_op.drop_column("merged_into")
        batch_op.drop_column("urgency")
        batch_op.drop_column("community_code")
        batch_op.drop_column("judged_kind_code")

    op.create_table(
        "unit_day_stats",
        sa.Column("unit_code", sa.VARCHAR(length=64), nullable=False),
        sa.Column("day", sa.DATE(), nullable=False),
        sa.Column("dispatched", sa.INTEGER(), nullable=False),
        sa.Column("signed", sa.INTEGER(), nullable=False),
        sa.Column("signed_on_time", sa.INTEGER(), nullable=False),
        sa.Column("completed", sa.INTEGER(), nullable=False),
        sa.Column("completed_on_time", sa.INTEGER(), nullable=False),
        sa.Column("feedback", sa.INTEGER(), nullable=False),
        sa.Column("resolved", sa.INTEGER(), nullable=False),
        sa.Column("satisfied", sa.INTEGER(), nullable=False),
        sa.Column("basically_satisfied", sa.INTEGER(), nullable=False),
        sa.Column("dissatisfied", sa.INTEGER(), nullable=False),
        sa.Column("reopened", sa.INTEGER(), nullable=False),
        sa.Column("overdue", sa.INTEGER(), server_default=sa.text("'0'"), nullable=False),
        sa.Column("bottom_up_ratings", sa.INTEGER(), server_default=sa.text("'0'"), nullable=False),
        sa.Column("bottom_up_score_sum", sa.INTEGER(), server_default=sa.text("'0'"), nullable=False),
        sa.PrimaryKeyConstraint("unit_code", "day"),
    )
    _carry_back()
    with op.batch_alter_table("rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_rollups_code")

    op.drop_table("rollups")
    with op.batch_alter_table("report_places", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_places_place_key"))

    op.drop_table("report_places")
    with op.batch_alter_table("case_reroutes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_reroutes_from_kind"))
        batch_op.drop_index(batch_op.f("ix_case_reroutes_case_id"))
        batch_op.drop_index(batch_op.f("ix_case_reroutes_at"))

    op.drop_table("case_reroutes")
    with op.batch_alter_table("callback_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_attempts_case_id"))

    op.drop_table("callback_attempts")
