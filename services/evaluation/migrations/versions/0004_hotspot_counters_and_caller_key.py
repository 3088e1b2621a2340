"""hot-spot counters per place cell, category, kind and day; the caller's keyed pseudonym on cases

Cases already judged are counted into the new tables with the default settings (Asia/Shanghai days, 200 m GPS
squares); cases from before this revision have no caller pseudonym, so their reporters are estimated by source
and spot.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 14:40:00.000000
"""

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = ZoneInfo("Asia/Shanghai")
CELL_M = 200.0
M_PER_DEGREE = 111_320
URGENCY_WEIGHT = {"normal": 1.0, "urgent": 1.5, "emergency": 2.0}


def upgrade() -> None:
    counts = op.create_table(
        "hotspot_counts",
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("category_code", sa.String(length=32), nullable=False),
        sa.Column("cell", sa.String(length=320), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind_code", sa.String(length=32), nullable=False),
        sa.Column("reports", sa.Integer(), server_default="0", nullable=False),
        sa.Column("severity_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("from_hotline", sa.Integer(), server_default="0", nullable=False),
        sa.Column("from_grid", sa.Integer(), server_default="0", nullable=False),
        sa.Column("from_town", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("level", "category_code", "cell", "day", "kind_code"),
    )
    with op.batch_alter_table("hotspot_counts", schema=None) as batch_op:
        batch_op.create_index("ix_hotspot_counts_day", ["level", "day"], unique=False)
    reporters = op.create_table(
        "hotspot_reporters",
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("category_code", sa.String(length=32), nullable=False),
        sa.Column("cell", sa.String(length=320), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reporter", sa.String(length=340), nullable=False),
        sa.Column("reports", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("level", "category_code", "cell", "day", "reporter"),
    )
    with op.batch_alter_table("evaluated_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("caller_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("spot_day", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("spot_category", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("spot_kind", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("spot_grid", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("spot_community", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("spot_street", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("spot_reporter", sa.String(length=340), nullable=True))
        batch_op.add_column(sa.Column("spot_severity", sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f("ix_evaluated_cases_caller_key"), ["caller_key"], unique=False)
        batch_op.create_index("ix_evaluated_cases_spot_grid", ["spot_category", "spot_grid", "spot_day"], unique=False)
        batch_op.create_index(
            "ix_evaluated_cases_spot_community", ["spot_category", "spot_community", "spot_day"], unique=False
        )
    _count_existing(counts, reporters)


def _gps_cell(lat: float, lon: float) -> str:
    row = math.floor(lat * M_PER_DEGREE / CELL_M)
    centre_lat = (row + 0.5) * CELL_M / M_PER_DEGREE
    lon_m = M_PER_DEGREE * max(math.cos(math.radians(centre_lat)), 0.01)
    return f"gps{CELL_M:g}m:{row},{math.floor(lon * lon_m / CELL_M)}"


def _count_existing(counts: sa.Table, reporters: sa.Table) -> None:
    """Count the cases judged before this revision, as the event handlers would have."""
    bind = op.get_bind()
    cases = sa.table(
        "evaluated_cases",
        *(sa.column(name) for name in ("case_id", "source", "kind_code", "category_code", "urgency")),
        sa.column("judged_at", sa.DateTime(timezone=True)),
        *(sa.column(name) for name in ("street_code", "community_code", "grid_code")),
        *(sa.column(name) for name in ("spot_day", "spot_category", "spot_kind", "spot_grid", "spot_community")),
        *(sa.column(name) for name in ("spot_street", "spot_reporter", "spot_severity")),
    )
    places = sa.table("report_places", *(sa.column(name) for name in ("case_id", "place_key", "lat", "lon")))
    rows = bind.execute(
        sa.select(cases, places.c.place_key, places.c.lat, places.c.lon)
        .select_from(cases.outerjoin(places, places.c.case_id == cases.c.case_id))
        .where(cases.c.kind_code.is_not(None))
    ).mappings()
    totals: dict[tuple[str, str, str, object, str], list[float]] = defaultdict(lambda: [0, 0.0, 0, 0, 0])
    seen: dict[tuple[str, str, str, object, str], int] = defaultdict(int)
    for row in rows.all():
        judged = row["judged_at"]
        judged = judged.replace(tzinfo=UTC) if judged.tzinfo is None else judged
        day = judged.astimezone(TZ).date()
        category = row["category_code"] or row["kind_code"]
        located = ""
        if row["lat"] is not None and row["lon"] is not None:
            located = _gps_cell(row["lat"], row["lon"])
        elif row["place_key"]:
            located = row["place_key"]
        cells = {
            "grid": row["grid_code"] or located,
            "community": row["community_code"] or located,
            "street": row["street_code"] or "",
        }
        reporter = f"{row['source']}:{row['place_key']}" if row["place_key"] else f"case:{row['case_id']}"
        severity = URGENCY_WEIGHT.get(row["urgency"], 1.0)
        for level, cell in cells.items():
            total = totals[(level, category, cell, day, row["kind_code"])]
            total[0] += 1
            total[1] += severity
            total[2 + ("hotline", "grid", "town").index(row["source"])] += 1
            if level != "street" and cell:
                seen[(level, category, cell, day, reporter)] += 1
        bind.execute(
            cases.update()
            .where(cases.c.case_id == row["case_id"])
            .values(
                spot_day=day,
                spot_category=category,
                spot_kind=row["kind_code"],
                spot_grid=cells["grid"],
                spot_community=cells["community"],
                spot_street=cells["street"],
                spot_reporter=reporter,
                spot_severity=severity,
            )
        )
    names = ("level", "category_code", "cell", "day", "kind_code")
    counters = ("reports", "severity_sum", "from_hotline", "from_grid", "from_town")
    if totals:
        op.bulk_insert(counts, [dict(zip(names + counters, (*k, *v), strict=True)) for k, v in totals.items()])
    who = ("level", "category_code", "cell", "day", "reporter", "reports")
    if seen:
        op.bulk_insert(reporters, [dict(zip(who, (*k, n), strict=True)) for k, n in seen.items()])


def downgrade() -> None:
    with op.batch_alter_table("evaluated_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluated_cases_spot_community")
        batch_op.drop_index("ix_evaluated_cases_spot_grid")
        batch_op.drop_index(batch_op.f("ix_evaluated_cases_caller_key"))
        for name in ("spot_severity", "spot_reporter", "spot_street", "spot_community", "spot_grid", "spot_kind"):
            batch_op.drop_column(name)
        for name in ("spot_category", "spot_day", "caller_key"):
            batch_op.drop_column(name)
    op.drop_table("hotspot_reporters")
    with op.batch_alter_table("hotspot_counts", schema=None) as batch_op:
        batch_op.drop_index("ix_hotspot_counts_day")
    op.drop_table("hotspot_counts")
