"""Evaluation tables: cases as evaluation sees them, call-backs, roll-ups, and what the "use" step reads."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Date, Float, Index, Integer, String, Table, Text, UniqueConstraint, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.evaluation.rollup import BUCKET_COLUMNS, FLOAT_COUNTERS, INT_COUNTERS
from shared.db import BigIntKey, UTCDateTime
from shared.outbox import define_messaging_tables


class Base(DeclarativeBase):
    """Declarative base of the evaluation database."""


class EvaluatedCase(Base):
    """What evaluation knows of a case, built from dispatch's events.

    ``assignments`` holds one entry per dispatch of the case to a unit (the first, and each re-dispatch after a
    return or a dispute) with that assignment's counters: exactly what it added to the roll-ups.
    """

    __tablename__ = "evaluated_cases"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_number: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    kind_code: Mapped[str | None] = mapped_column(String(32), index=True)
    category_code: Mapped[str | None] = mapped_column(String(32))
    judged_kind_code: Mapped[str | None] = mapped_column(String(32))
    street_code: Mapped[str | None] = mapped_column(String(32))
    community_code: Mapped[str | None] = mapped_column(String(64))
    grid_code: Mapped[str | None] = mapped_column(String(64))
    place_name: Mapped[str | None] = mapped_column(String(200))
    urgency: Mapped[str] = mapped_column(String(16), default="normal", server_default="normal")
    primary_unit: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    merged_into: Mapped[str | None] = mapped_column(String(36))
    judged_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_day: Mapped[date | None] = mapped_column(Date)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    round: Mapped[int] = mapped_column(Integer, default=0)
    overdue_counted: Mapped[bool] = mapped_column(Boolean, default=False)
    assignments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    outcome: Mapped[str | None] = mapped_column(String(24))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    score: Mapped[float | None] = mapped_column(Float)
    score_breakdown: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    caller_key: Mapped[str | None] = mapped_column(String(64), index=True)  # keyed pseudonym, never the phone
    # What the case added to the hot-spot counters (services/evaluation/spots.py), to take back on change.
    spot_day: Mapped[date | None] = mapped_column(Date)
    spot_category: Mapped[str | None] = mapped_column(String(32))
    spot_kind: Mapped[str | None] = mapped_column(String(32))
    spot_grid: Mapped[str | None] = mapped_column(String(320))
    spot_community: Mapped[str | None] = mapped_column(String(320))
    spot_street: Mapped[str | None] = mapped_column(String(64))
    spot_reporter: Mapped[str | None] = mapped_column(String(340))
    spot_severity: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_evaluated_cases_spot_grid", "spot_category", "spot_grid", "spot_day"),
        Index("ix_evaluated_cases_spot_community", "spot_category", "spot_community", "spot_day"),
    )


class Feedback(Base):
    """The answer to the call-back (回访) of one round of handling, or the round closed as unreachable."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("case_id", "round", name="uq_feedback_case_round"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    round: Mapped[int] = mapped_column(Integer)
    unit_code: Mapped[str | None] = mapped_column(String(64))
    respondent: Mapped[str] = mapped_column(String(16), default="citizen", server_default="citizen")
    outcome: Mapped[str] = mapped_column(String(16), default="answered", server_default="answered")
    resolved: Mapped[bool | None] = mapped_column(Boolean)
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    fault: Mapped[str | None] = mapped_column(String(16))
    fault_reason: Mapped[str | None] = mapped_column(Text)
    counted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    comment: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallbackAttempt(Base):
    """A call-back that did not reach the respondent."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    round: Mapped[int] = mapped_column(Integer)
    respondent: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReportPlace(Base):
    """Where a report was made, from intake's ``report.received`` (no personal data is kept).

    ``place_key`` names the spot for repeat complaints: ``addr:`` and the address without spaces or punctuation,
    else ``gps:`` and the point rounded to 4 decimals (about 10 m).
    """

    __tablename__ = "report_places"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    address: Mapped[str | None] = mapped_column(String(300))
    place_key: Mapped[str | None] = mapped_column(String(320), index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CaseReroute(Base):
    """A case that left the kind or unit it was first sent to: after a return, a dispute or a person's triage."""

    __tablename__ = "case_reroutes"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    case_number: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    reason: Mapped[str] = mapped_column(String(16))
    from_kind: Mapped[str | None] = mapped_column(String(32), index=True)
    to_kind: Mapped[str | None] = mapped_column(String(32))
    from_unit: Mapped[str | None] = mapped_column(String(64))
    to_unit: Mapped[str | None] = mapped_column(String(64))
    return_reason: Mapped[str | None] = mapped_column(Text)


# Counters per span (day or month), level, code, kind and period, kept up to date as events arrive. Levels:
# department (the responsible unit), street, community, grid (the case's territory) and city (one code, "city").
# Department and street rows are split by kind; the others use kind "*" (all kinds), as do counters that belong
# to no kind (towns' ratings of a department). A query sums rows; it never reads the cases.
rollups = Table(
    "rollups",
    Base.metadata,
    Column("span", String(8), primary_key=True),
    Column("level", String(16), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("code", String(64), primary_key=True),
    Column("kind_code", String(32), primary_key=True),
    Column("category_code", String(32), nullable=False, server_default="*"),
    *(Column(name, Integer, nullable=False, server_default="0") for name in (*INT_COUNTERS, *BUCKET_COLUMNS)),
    *(Column(name, Float, nullable=False, server_default="0") for name in FLOAT_COUNTERS),
    Index("ix_rollups_code", "span", "level", "code", "period_start"),
)

# Hot-spot counters per level (grid, community, street), category, place cell, local day and kind: what
# GET /v1/hotspots and the monthly issue list sum. A cell is the area's code, else a GPS square, else the address.
hotspot_counts = Table(
    "hotspot_counts",
    Base.metadata,
    Column("level", String(16), primary_key=True),
    Column("category_code", String(32), primary_key=True),
    Column("cell", String(320), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("kind_code", String(32), primary_key=True),
    Column("reports", Integer, nullable=False, server_default="0"),
    Column("severity_sum", Float, nullable=False, server_default="0"),
    Column("from_hotline", Integer, nullable=False, server_default="0"),
    Column("from_grid", Integer, nullable=False, server_default="0"),
    Column("from_town", Integer, nullable=False, server_default="0"),
    Index("ix_hotspot_counts_day", "level", "day"),
)

# Reports per reporter (a caller pseudonym, else source and spot) per cell and day: distinct reporters of a window.
hotspot_reporters = Table(
    "hotspot_reporters",
    Base.metadata,
    Column("level", String(16), primary_key=True),
    Column("category_code", String(32), primary_key=True),
    Column("cell", String(320), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("reporter", String(340), primary_key=True),
    Column("reports", Integer, nullable=False, server_default="0"),
)


messaging = define_messaging_tables(Base.metadata)
