"""Evaluation tables: cases as evaluation sees them, call-back feedback, and per-unit roll-ups."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import BigIntKey, UTCDateTime
from shared.outbox import define_messaging_tables


class Base(DeclarativeBase):
    """Declarative base of the evaluation database."""


class EvaluatedCase(Base):
    """What evaluation knows of a case, built from dispatch's events."""

    __tablename__ = "evaluated_cases"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_number: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    kind_code: Mapped[str | None] = mapped_column(String(32), index=True)
    category_code: Mapped[str | None] = mapped_column(String(32))
    street_code: Mapped[str | None] = mapped_column(String(32))
    grid_code: Mapped[str | None] = mapped_column(String(64))
    place_name: Mapped[str | None] = mapped_column(String(200))
    primary_unit: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    judged_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_day: Mapped[date | None] = mapped_column(Date)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    round: Mapped[int] = mapped_column(Integer, default=0)
    overdue_counted: Mapped[bool] = mapped_column(Boolean, default=False)


class Feedback(Base):
    """The citizen's answer to the call-back (回访) for one round of handling."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("case_id", "round", name="uq_feedback_case_round"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    round: Mapped[int] = mapped_column(Integer)
    unit_code: Mapped[str | None] = mapped_column(String(64))
    resolved: Mapped[bool] = mapped_column(Boolean)
    satisfaction: Mapped[str] = mapped_column(String(24))
    comment: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UnitDayStats(Base):
    """Per unit and day (the day the case was dispatched): counters kept up to date as events arrive."""

    __tablename__ = "unit_day_stats"

    unit_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dispatched: Mapped[int] = mapped_column(Integer, default=0)
    signed: Mapped[int] = mapped_column(Integer, default=0)
    signed_on_time: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    completed_on_time: Mapped[int] = mapped_column(Integer, default=0)
    feedback: Mapped[int] = mapped_column(Integer, default=0)
    resolved: Mapped[int] = mapped_column(Integer, default=0)
    satisfied: Mapped[int] = mapped_column(Integer, default=0)
    basically_satisfied: Mapped[int] = mapped_column(Integer, default=0)
    dissatisfied: Mapped[int] = mapped_column(Integer, default=0)
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    overdue: Mapped[int] = mapped_column(Integer, default=0)
    bottom_up_ratings: Mapped[int] = mapped_column(Integer, default=0)
    bottom_up_score_sum: Mapped[int] = mapped_column(Integer, default=0)


messaging = define_messaging_tables(Base.metadata)
