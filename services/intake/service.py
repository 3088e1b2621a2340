"""Receiving reports (接): store once, number, and announce them through the outbox."""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, String, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.canonical import canonical_report
from services.intake.models import CaseNumberCounter, Report, messaging
from services.intake.schemas import Location, ReportCreate, Reporter, ReporterMasked, ReporterRevealed, ReportRead
from shared import topics
from shared.db import UTCDateTime, buffered_writes, write_buffer
from shared.events import CloudEvent, utcnow
from shared.ids import time_ordered_id
from shared.outbox import add_events
from shared.pii import PersonalData
from shared.problems import Conflict, NotFound

SOURCE = "/jiesu/intake"


def fingerprint(report: ReportCreate, *, secret: str) -> str:
    """A stable digest of what was sent, to tell a retry from a clash of external ids.

    Keyed (HMAC over the SHA-256 of the report), because the report holds the reporter: a plain digest would let
    anyone who reads the table find the phone number by trying them all against the rest of the row.
    """
    return keyed_fingerprint(hashlib.sha256(canonical_report(report).encode()).hexdigest(), secret=secret)


def keyed_fingerprint(digest: str, *, secret: str) -> str:
    """The stored fingerprint of a report's SHA-256 digest (also how migration 0004 rekeys older rows)."""
    keyed = _keyed(secret).copy()
    keyed.update(f"report-fingerprint:{digest}".encode())
    return keyed.hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    # The HMAC keyed once per secret; each fingerprint continues a copy of it.
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def reporter_context(report_id: str) -> str:
    """What a sealed reporter is bound to: its report (a blob copied onto another report does not open)."""
    return f"jiesu.intake.reports/{report_id}/reporter"


async def find_by_external_id(session: AsyncSession, *, source: str, external_id: str) -> Report | None:
    """The report a sender already delivered under this id, if any."""
    result = await session.execute(select(Report).where(Report.source == source, Report.external_id == external_id))
    return result.scalar_one_or_none()


async def find_many(session: AsyncSession, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Accepted]:
    """Reports already delivered under any of these (source, external_id) pairs, as their senders were answered."""
    if not keys:
        return {}
    by_source: dict[str, list[str]] = {}
    for source, external_id in keys:
        by_source.setdefault(source, []).append(external_id)
    params: dict[str, str | list[str]] = {}
    for index, (source, external_ids) in enumerate(by_source.items()):
        params[f"source_{index}"] = source
        params[f"external_ids_{index}"] = external_ids
    # Core, not the ORM: a group commit of one report spent more on loading the lookup than on anything else.
    rows = await (await session.connection()).execute(_lookup(len(by_source)), params)
    return {(r.source, r.external_id): Accepted(r.id, r.case_number, r.fingerprint) for r in rows}


@functools.cache
def _lookup(sources: int) -> Any:
    """The look-up of ``sources`` sources' external ids, built once per count of sources.

    One ``source = ? AND external_id IN (...)`` per source, not ``(source, external_id) IN ((?, ?), ...)``: SQLite
    answers a row-value list by scanning the whole table, which grows with every report ever received; this form
    is a lookup in the (source, external_id) unique index on SQLite and PostgreSQL alike.
    """
    reports = _reports()
    return select(
        reports.c.source, reports.c.external_id, reports.c.id, reports.c.case_number, reports.c.fingerprint
    ).where(
        or_(
            *(
                and_(
                    reports.c.source == bindparam(f"source_{n}"),
                    reports.c.external_id.in_(bindparam(f"external_ids_{n}", expanding=True)),
                )
                for n in range(sources)
            )
        )
    )


def _reports() -> Table:
    table = Report.__table__
    assert isinstance(table, Table)
    return table


def check_replay(existing: Report | Accepted, report: ReportCreate, *, secret: str) -> None:
    """A repeated external id must carry the same report; anything else is a sender's bug."""
    if existing.fingerprint != fingerprint(report, secret=secret):
        raise Conflict(
            f"external_id {report.external_id!r} was already used by {report.source} for a different report "
            f"({existing.case_number}); send a new external_id for a new report",
            field="external_id",
            case_number=existing.case_number,
        )


async def allocate_numbers(session: AsyncSession, *, day: str, count: int) -> range:
    """Reserve ``count`` consecutive case numbers of a day (the counter row is locked until commit)."""
    connection = await session.connection()
    upsert = _number_upsert(connection.dialect.name)
    last: int = (await connection.execute(upsert, {"day": day, "last": count})).scalar_one()
    return range(last - count + 1, last + 1)


@functools.cache
def _number_upsert(dialect: str) -> Any:
    """One upsert, built once per dialect: the day's first numbers create the row, later ones add to it (both
    dialects lock it the same way)."""
    table = CaseNumberCounter.__table__
    assert isinstance(table, Table)
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return (
        insert.values(day=bindparam("day"), last=bindparam("last"))
        .on_conflict_do_update(index_elements=[table.c.day], set_={"last": table.c.last + insert.excluded.last})
        .returning(table.c.last)
    )


@dataclass(frozen=True, slots=True)
class Accepted:
    """A stored report as its sender is answered (id, case number), and its fingerprint to tell a repeat from a
    different report under the same external id."""

    id: str
    case_number: str
    fingerprint: str


async def accept_reports(
    session: AsyncSession,
    reports: list[ReportCreate],
    *,
    number_prefix: str,
    tz: ZoneInfo,
    personal_data: PersonalData,
) -> list[Accepted]:
    """Store new reports (the reporter sealed) and their ``report.received`` events in the caller's transaction."""
    if not reports:
        return []
    now = utcnow()
    day = now.astimezone(tz).strftime("%Y%m%d")
    numbers = await allocate_numbers(session, day=day, count=len(reports))
    secret = personal_data.caller_secret
    # Plain rows for one Core multi-row insert: no ORM object per report. Every row names every column written, so
    # the rows stay one batch; the columns left out (seq, primary_unit, complete_deadline) keep their defaults.
    rows = [
        report_row(
            report,
            report_id=time_ordered_id(),
            case_number=f"{number_prefix}{day}{number:07d}",
            fingerprint=fingerprint(report, secret=secret),
            now=now,
            personal_data=personal_data,
        )
        for report, number in zip(reports, numbers, strict=True)
    ]
    table = Report.__table__
    assert isinstance(table, Table)
    # The reports, their events and the relays' wake-up: one statement on PostgreSQL.
    async with buffered_writes(session) as buffer:
        buffer.add(table, rows)
        await add_events(
            session,
            messaging,
            [
                (
                    topics.REPORTS,
                    "report",
                    row["id"],
                    CloudEvent(
                        type=topics.REPORT_RECEIVED,
                        source=SOURCE,
                        subject=row["id"],
                        time=now,
                        data=received_payload(row),
                    ),
                )
                for row in rows
            ],
        )
    return [Accepted(id=row["id"], case_number=row["case_number"], fingerprint=row["fingerprint"]) for row in rows]


def report_row(
    report: ReportCreate,
    *,
    report_id: str,
    case_number: str,
    fingerprint: str,
    now: datetime,
    personal_data: PersonalData,
) -> dict[str, Any]:
    """The ``reports`` row of a new report, by column name."""
    location = report.location
    reporter = report.reporter
    if reporter is None:
        sealed = masked = caller = None
    else:
        sealed, masked, caller = protect_reporter(reporter, report_id=report_id, personal_data=personal_data)
    return {
        "id": report_id,
        "case_number": case_number,
        "source": report.source,
        "external_id": report.external_id,
        "fingerprint": fingerprint,
        "content": report.content,
        "subject": report.subject,
        "address": report.address,
        "lat": location.lat if location is not None else None,
        "lon": location.lon if location is not None else None,
        "grid_code": report.grid_code,
        "reporter_sealed": sealed,
        "reporter_masked": masked,
        "caller_key": caller,
        "kind_code": report.kind_code,
        "requested_departments": list(report.requested_departments),
        "urgency": report.urgency,
        "attachments": [str(url) for url in report.attachments],
        "occurred_at": report.occurred_at,
        "received_at": now,
        "status": "received",
        "status_at": now,
    }


def protect_reporter(
    reporter: Reporter, *, report_id: str, personal_data: PersonalData
) -> tuple[str, dict[str, str | None], str | None]:
    """The reporter's columns: the values sealed, their masked forms, and the caller pseudonym."""
    values = reporter.model_dump()
    summary = personal_data.summary(values) or {}
    return (
        personal_data.keyring.seal(values, context=reporter_context(report_id)),
        {
            "name": summary["name_masked"],
            "phone": summary["phone_masked"],
            "id_number": summary["id_number_masked"],
        },
        summary["caller_key"],
    )


def received_payload(row: dict[str, Any]) -> dict[str, object]:
    """The body of ``report.received``: what dispatch needs to judge the report; the reporter only masked."""
    masked: dict[str, str | None] | None = row["reporter_masked"]
    occurred_at: datetime | None = row["occurred_at"]
    return {
        "id": row["id"],
        "case_number": row["case_number"],
        "source": row["source"],
        "external_id": row["external_id"],
        "content": row["content"],
        "subject": row["subject"],
        "address": row["address"],
        "location": {"lat": row["lat"], "lon": row["lon"]} if row["lat"] is not None else None,
        "grid_code": row["grid_code"],
        "reporter": None
        if masked is None
        else {
            "name_masked": masked.get("name"),
            "phone_masked": masked.get("phone"),
            "id_number_masked": masked.get("id_number"),
            "caller_key": row["caller_key"],
        },
        "kind_code": row["kind_code"],
        "requested_departments": row["requested_departments"],
        "urgency": row["urgency"],
        "attachments": row["attachments"],
        "occurred_at": occurred_at.isoformat() if occurred_at else None,
        "received_at": row["received_at"].isoformat(),
    }


async def get_report(session: AsyncSession, report_id: str) -> Report:
    """A report by id, or 404."""
    row = (await session.execute(select(Report).where(Report.id == report_id))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no report {report_id}", field="id")
    return row


def to_read(row: Report) -> ReportRead:
    """The API view of a report; the reporter only masked."""
    assert row.case_number is not None
    masked = row.reporter_masked
    return ReportRead(
        id=row.id,
        case_number=row.case_number,
        source=row.source,
        external_id=row.external_id,
        status=row.status,
        status_at=row.status_at,
        received_at=row.received_at,
        content=row.content,
        subject=row.subject,
        address=row.address,
        location=Location(lat=row.lat, lon=row.lon) if row.lat is not None and row.lon is not None else None,
        grid_code=row.grid_code,
        kind_code=row.kind_code,
        requested_departments=row.requested_departments,
        urgency=row.urgency,
        attachments=row.attachments,
        occurred_at=row.occurred_at,
        reporter=ReporterMasked.model_validate(masked) if masked is not None else None,
    )


def reveal(row: Report, personal_data: PersonalData) -> ReporterRevealed:
    """The reporter in full, opened from its sealed form (for the hotline, staff and admin)."""
    assert row.case_number is not None
    reporter = None
    if row.reporter_sealed is not None:
        values = personal_data.keyring.open(row.reporter_sealed, context=reporter_context(row.id))
        reporter = Reporter.model_construct(**values)
    return ReporterRevealed(report_id=row.id, case_number=row.case_number, reporter=reporter)


def _status_mirror() -> Any:
    """The one statement every case event's mirror runs (so a chunk's mirrors are one executemany).

    The row changes only when the event is not older than what it mirrors (timestamps compare as instants on
    PostgreSQL and as fixed-width UTC text on SQLite); a primary unit replaces the known one only when given; the
    deadline only when the event carries one (which may be none). An unknown report changes nothing.
    """
    reports = Report.__table__
    assert isinstance(reports, Table)
    at = bindparam("m_at", type_=UTCDateTime())
    return (
        update(reports)
        .where(reports.c.id == bindparam("m_id"), reports.c.status_at <= at)
        .values(
            status=bindparam("m_status"),
            status_at=at,
            primary_unit=func.coalesce(bindparam("m_unit", type_=String()), reports.c.primary_unit),
            complete_deadline=case(
                (bindparam("m_given", type_=Boolean()), bindparam("m_deadline", type_=UTCDateTime())),
                else_=reports.c.complete_deadline,
            ),
        )
    )


STATUS_MIRROR = _status_mirror()
_MIRRORS = "intake.status_mirrors"


async def _write_mirrors(session: AsyncSession, mirrors: list[dict[str, Any]]) -> None:
    if mirrors:
        await session.execute(STATUS_MIRROR, mirrors)


async def follow_case_status(
    session: AsyncSession,
    *,
    report_id: str,
    status: str,
    at: datetime,
    primary_unit: str | None = None,
    complete_deadline: datetime | None = None,
    deadline_given: bool = False,
) -> None:
    """Mirror the case's status, primary unit (主办单位) and completion deadline (办结时限) onto the report.

    An event older than the status already mirrored changes nothing; the deadline changes only when the event
    carries one (``deadline_given``), so events without deadlines keep the last known one. Inside a consumer
    chunk the mirrors are written at its end, in the order of the events, as one statement run for each.
    """
    mirror = {
        "m_id": report_id,
        "m_status": status,
        "m_at": at,
        "m_unit": primary_unit,
        "m_given": deadline_given,
        "m_deadline": complete_deadline if deadline_given else None,
    }
    buffer = write_buffer(session)
    if buffer is None:
        await _write_mirrors(session, [mirror])
        return
    if _MIRRORS not in buffer.merges:
        buffer.merges[_MIRRORS] = (_write_mirrors, [])
    buffer.merges[_MIRRORS][1].append(mirror)
