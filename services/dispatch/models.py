"""Dispatch tables: cases and their hash-chained trail (留痕), plus the messaging outbox and inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import BigIntKey, UTCDateTime
from shared.outbox import define_messaging_tables


class Base(DeclarativeBase):
    """Declarative base of the dispatch database."""


class Case(Base):
    """A case: one report as judged, routed and handled."""

    __tablename__ = "cases"
    # The duplicate search (合并) looks a report's caller, address and map cell up within the window, each by its own
    # index, so its cost does not grow with the open cases of the kind (services/dispatch/duplicates.py); the
    # kind's window (ix_cases_kind_received) only for a search radius too wide for the cells.
    # Lists of cases (GET /v1/cases), newest first: pages are read backwards off ix_cases_received instead of
    # sorting every matching case.
    __table_args__ = (
        Index("ix_cases_kind_received", "kind_code", "received_at"),
        Index("ix_cases_received", "received_at", "id"),
        Index("ix_cases_caller_received", "reporter_key", "received_at"),
        Index("ix_cases_address_received", "address", "received_at"),
        Index("ix_cases_cell_kind_received", "cell", "kind_code", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_number: Mapped[str] = mapped_column(String(32), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    cell: Mapped[int | None] = mapped_column(Integer)  # the map cell of (lat, lon): duplicates.cell_of
    grid_code: Mapped[str | None] = mapped_column(String(64))
    reporter_phone_masked: Mapped[str | None] = mapped_column(String(32))
    requested_departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    urgency: Mapped[str] = mapped_column(String(16))
    domain_code: Mapped[str | None] = mapped_column(String(64))
    category_code: Mapped[str | None] = mapped_column(String(32), index=True)
    kind_code: Mapped[str | None] = mapped_column(String(32), index=True)
    confidence: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(16))
    judge_method: Mapped[str | None] = mapped_column(String(32))
    judge_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    territory: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    street_code: Mapped[str | None] = mapped_column(String(32), index=True)
    primary_unit: Mapped[str | None] = mapped_column(String(64), index=True)
    cooperating_units: Mapped[list[str]] = mapped_column(JSON, default=list)
    transfer_to: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(32), index=True)
    sign_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    complete_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline_basis: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    returns: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    trail_head: Mapped[str | None] = mapped_column(String(64))
    reporter_key: Mapped[str | None] = mapped_column(String(64))
    merged_into: Mapped[str | None] = mapped_column(String(36))
    merged_cases: Mapped[list[str]] = mapped_column(JSON, default=list)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class CaseEntry(Base):
    """One entry of a case's trail; each entry's hash covers the previous one."""

    __tablename__ = "case_trail"
    __table_args__ = (Index("ix_case_trail_case_seq", "case_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class CaseTask(Base):
    """A cooperating unit's share of a case (协办), or a department a town whistled for (吹哨报到)."""

    __tablename__ = "case_tasks"
    __table_args__ = (UniqueConstraint("case_id", "unit_code", name="uq_case_tasks_case_unit"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    unit_code: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))  # cooperating | whistle
    status: Mapped[str] = mapped_column(String(16))  # assigned | checked_in | reported
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checkin_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    report: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Extension(Base):
    """A unit's request for more time (延期) and the centre's decision."""

    __tablename__ = "extensions"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    unit_code: Mapped[str] = mapped_column(String(64))
    working_days: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # requested | granted | refused
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decision_reason: Mapped[str | None] = mapped_column(Text)


class Dispute(Base):
    """A responsibility dispute climbing the three-level consultation (三级会商: street, district, city)."""

    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    level: Mapped[str] = mapped_column(String(16))  # street | district | city
    status: Mapped[str] = mapped_column(String(16))  # open | settled
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LabelledExample(Base):
    """A person's judgement of a report (triage, re-routing, dispute), kept to teach the classifier."""

    __tablename__ = "labelled_examples"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    subject: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text)
    kind_code: Mapped[str] = mapped_column(String(32))
    machine_kind_code: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(32))  # triage | return | dispute
    decided_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Timer(Base):
    """A durable timer: fires once, in the same transaction as what it causes."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_pending", "fired_at", "due_at"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    unit_code: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))  # fired | moot | cancelled


messaging = define_messaging_tables(Base.metadata)
