"""Intake tables: reports as received (接), plus the messaging outbox and inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import BigIntKey, UTCDateTime
from shared.outbox import define_messaging_tables


class Base(DeclarativeBase):
    """Declarative base of the intake database."""


class Report(Base):
    """One report from the hotline, a grid worker or a town, exactly as it arrived."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_reports_source_external_id"),)

    seq: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    case_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(64))
    # The reporter's personal data, sealed (AES-GCM, shared/pii.py); only intake's reveal route opens it.
    reporter_sealed: Mapped[str | None] = mapped_column(Text)
    # What may be shown or sent on: name, phone and ID number masked (张*三, 138****1234, 110101********123X).
    reporter_masked: Mapped[dict[str, str | None] | None] = mapped_column(JSON)
    # The caller pseudonym (HMAC of the phone with the shared caller secret) dispatch matches repeat callers by.
    caller_key: Mapped[str | None] = mapped_column(String(64))
    kind_code: Mapped[str | None] = mapped_column(String(32))
    requested_departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    urgency: Mapped[str | None] = mapped_column(String(16))
    attachments: Mapped[list[str]] = mapped_column(JSON, default=list)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    status: Mapped[str] = mapped_column(String(32))
    status_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Mirrored from dispatch's case events, so the report can be shown with who handles it and by when.
    primary_unit: Mapped[str | None] = mapped_column(String(64))
    complete_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CaseNumberCounter(Base):
    """The last case number handed out on a day (in the centre's timezone)."""

    __tablename__ = "case_number_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


messaging = define_messaging_tables(Base.metadata)
