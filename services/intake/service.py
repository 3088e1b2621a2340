"""Receiving reports (接): store once, number, and announce them through the outbox."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Table, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import CaseNumberCounter, Report, messaging
from services.intake.schemas import Location, ReportCreate, Reporter, ReporterMasked, ReporterRevealed, ReportRead
from shared import topics
from shared.events import CloudEvent, utcnow
from shared.outbox import add_events
from shared.pii import PersonalData
from shared.problems import Conflict, NotFound

SOURCE = "/jiesu/intake"


def fingerprint(report: ReportCreate, *, secret: str) -> str:
    """A stable digest of what was sent, to tell a retry from a clash of external ids.

    Keyed (HMAC over the SHA-256 of the report), because the report holds the reporter: a plain digest would let
    anyone who reads the table find the phone number by trying them all against the rest of the row.
    """
    sent = report.model_dump(mode="json")
    if sent["reporter"] is not None and sent["reporter"]["id_number"] is None:
        # Reports from before the ID number existed keep the digest they were stored with.
        del sent["reporter"]["id_number"]
    canonical = json.dumps(sent, sort_keys=True, ensure_ascii=False)
    return keyed_fingerprint(hashlib.sha256(canonical.encode()).hexdigest(), secret=secret)


def keyed_fingerprint(digest: str, *, secret: str) -> str:
    """The stored fingerprint of a report's SHA-256 digest (also how migration 0004 rekeys older rows)."""
    return hmac.new(secret.encode(), f"report-fingerprint:{digest}".encode(), hashlib.sha256).hexdigest()


def reporter_context(report_id: str) -> str:
    """What a sealed reporter is bound to: its report (a blob copied onto another report does not open)."""
    return f"jiesu.intake.reports/{report_id}/reporter"


async def find_by_external_id(session: AsyncSession, *, source: str, external_id: str) -> Report | None:
    """The report a sender already delivered under this id, if any."""
    result = await session.execute(select(Report).where(Report.source == source, Report.external_id == external_id))
    return result.scalar_one_or_none()


async def find_many(session: AsyncSession, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Report]:
    """Reports already delivered under any of these (source, external_id) pairs."""
    if not keys:
        return {}
    rows = await session.execute(select(Report).where(tuple_(Report.source, Report.external_id).in_(keys)))
    return {(r.source, r.external_id): r for r in rows.scalars()}


def check_replay(existing: Report, report: ReportCreate, *, secret: str) -> None:
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
    table = CaseNumberCounter.__table__
    assert isinstance(table, Table)
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    await session.execute(insert.values(day=day, last=0).on_conflict_do_nothing())
    last = (
        await session.execute(
            update(table).where(table.c.day == day).values(last=table.c.last + count).returning(table.c.last)
        )
    ).scalar_one()
    return range(last - count + 1, last + 1)


async def accept_reports(
    session: AsyncSession,
    reports: list[ReportCreate],
    *,
    number_prefix: str,
    tz: ZoneInfo,
    personal_data: PersonalData,
) -> list[Report]:
    """Store new reports (the reporter sealed) and their ``report.received`` events in the caller's transaction."""
    if not reports:
        return []
    now = utcnow()
    day = now.astimezone(tz).strftime("%Y%m%d")
    numbers = await allocate_numbers(session, day=day, count=len(reports))
    rows = [
        Report(
            id=(report_id := str(uuid.uuid4())),
            case_number=f"{number_prefix}{day}{number:07d}",
            source=report.source,
            external_id=report.external_id,
            fingerprint=fingerprint(report, secret=personal_data.caller_secret),
            content=report.content,
            subject=report.subject,
            address=report.address,
            lat=report.location.lat if report.location else None,
            lon=report.location.lon if report.location else None,
            grid_code=report.grid_code,
            **protect_reporter(report.reporter, report_id=report_id, personal_data=personal_data),
            kind_code=report.kind_code,
            requested_departments=list(report.requested_departments),
            urgency=report.urgency,
            attachments=[str(url) for url in report.attachments],
            occurred_at=report.occurred_at,
            received_at=now,
            status="received",
            status_at=now,
        )
        for report, number in zip(reports, numbers, strict=True)
    ]
    # One multi-row insert (no per-row flush): only the columns set above, so column defaults still apply.
    # render_nulls: rows that differ only in which values are None stay one batch.
    await session.execute(
        insert(Report).execution_options(render_nulls=True),
        [{k: v for k, v in vars(row).items() if not k.startswith("_")} for row in rows],
    )
    await add_events(
        session,
        messaging,
        [
            (
                topics.REPORTS,
                "report",
                row.id,
                CloudEvent(
                    type=topics.REPORT_RECEIVED, source=SOURCE, subject=row.id, time=now, data=received_payload(row)
                ),
            )
            for row in rows
        ],
    )
    return rows


def protect_reporter(
    reporter: Reporter | None, *, report_id: str, personal_data: PersonalData
) -> dict[str, object | None]:
    """The reporter's columns: the values sealed, their masked forms, and the caller pseudonym."""
    if reporter is None:
        return {"reporter_sealed": None, "reporter_masked": None, "caller_key": None}
    values = reporter.model_dump()
    summary = personal_data.summary(values) or {}
    return {
        "reporter_sealed": personal_data.keyring.seal(values, context=reporter_context(report_id)),
        "reporter_masked": {
            "name": summary["name_masked"],
            "phone": summary["phone_masked"],
            "id_number": summary["id_number_masked"],
        },
        "caller_key": summary["caller_key"],
    }


def received_payload(row: Report) -> dict[str, object]:
    """The body of ``report.received``: what dispatch needs to judge the report; the reporter only masked."""
    return {
        "id": row.id,
        "case_number": row.case_number,
        "source": row.source,
        "external_id": row.external_id,
        "content": row.content,
        "subject": row.subject,
        "address": row.address,
        "location": {"lat": row.lat, "lon": row.lon} if row.lat is not None else None,
        "grid_code": row.grid_code,
        "reporter": reporter_payload(row),
        "kind_code": row.kind_code,
        "requested_departments": row.requested_departments,
        "urgency": row.urgency,
        "attachments": row.attachments,
        "occurred_at": row.occurred_at.isoformat() if row.occurred_at else None,
        "received_at": row.received_at.isoformat(),
    }


def reporter_payload(row: Report) -> dict[str, str | None] | None:
    """The reporter as it leaves intake on the report topic: masked forms and the caller pseudonym only."""
    masked = row.reporter_masked
    if masked is None:
        return None
    return {
        "name_masked": masked.get("name"),
        "phone_masked": masked.get("phone"),
        "id_number_masked": masked.get("id_number"),
        "caller_key": row.caller_key,
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
    carries one (``deadline_given``), so events without deadlines keep the last known one.
    """
    row = (await session.execute(select(Report).where(Report.id == report_id))).scalar_one_or_none()
    if row is None:
        return
    current = row.status_at if row.status_at.tzinfo else row.status_at.replace(tzinfo=at.tzinfo)
    if at >= current:
        row.status = status
        row.status_at = at
        if primary_unit is not None:
            row.primary_unit = primary_unit
        if deadline_given:
            row.complete_deadline = complete_deadline
