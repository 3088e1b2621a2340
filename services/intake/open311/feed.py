"""The request feed (GET requests): filters, the 90-day window, paging, and how a report reads as a request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Report
from services.intake.open311.catalogue import Catalogue
from services.intake.open311.documents import ServiceRequest
from services.intake.open311.render import Open311Error
from services.intake.open311.submit import EXTERNAL_PREFIX

WINDOW = timedelta(days=90)
MAX_PAGE_SIZE = 1000
# Case statuses after which nothing more will be done on the request: closed (办结), refused (不予受理),
# transferred to 110/119/120/122, merged into another case.
CLOSED = frozenset({"closed", "refused", "transferred", "merged"})
STATUS_NOTES = {
    "received": "已受理，等待分拨",
    "judged": "已研判，等待派单",
    "triage": "人工研判中",
    "dispatched": "已派单至承办单位",
    "signed": "承办单位已签收",
    "in_progress": "承办单位办理中",
    "returned": "承办单位退单，重新分拨中",
    "disputed": "承办责任会商中",
    "extension_requested": "承办单位申请延期",
    "completed": "承办单位已办结，等待回访",
    "called_back": "已回访",
    "closed": "已办结",
    "reopened": "回访未解决，已重新交办",
    "refused": "不属于受理范围，不予受理",
    "transferred": "已转紧急部门处置",
    "merged": "与同一问题的其他诉求合并办理",
}
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Window:
    """The requested_datetime range searched, both ends included."""

    start: datetime
    end: datetime


def parse_moment(name: str, value: str) -> datetime:
    """A W3C/RFC 3339 date-time with its offset, or 400."""
    if not RFC3339.match(value):
        raise Open311Error(400, f"{name}: give a date-time with its offset, e.g. 2026-11-26T09:30:00+08:00")
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise Open311Error(400, f"{name}: {exc}") from exc
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999: as early or late as can be
        return EARLIEST if moment.year == 1 else LATEST


def _shift(moment: datetime, delta: timedelta) -> datetime:
    try:
        return moment + delta
    except OverflowError:
        return EARLIEST if delta < timedelta(0) else LATEST


def window(start: datetime | None, end: datetime | None, *, now: datetime) -> Window:
    """The spec's 90-day limit: the last 90 days by default, 90 days from a lone start or up to a lone end;
    a longer range keeps its last 90 days (as the 1000-request limit keeps the first 1000)."""
    if start is None and end is None:
        return Window(now - WINDOW, now)
    if end is None:
        assert start is not None
        return Window(start, _shift(start, WINDOW))
    if start is None or end - start > WINDOW:
        return Window(_shift(end, -WINDOW), end)
    return Window(start, end)


def split(name: str, value: str | None) -> list[str]:
    """A comma-delimited parameter's values (at most as many as a page holds)."""
    values = [part.strip() for part in (value or "").split(",") if part.strip()]
    if len(values) > MAX_PAGE_SIZE:
        raise Open311Error(400, f"{name}: at most {MAX_PAGE_SIZE} values")
    return values


def in_scope(query: Select[Report], *, publish_all: bool) -> Select[Report]:
    """Only reports posted through Open311, unless every report is published."""
    if publish_all:
        return query
    return query.where(Report.source == "hotline", Report.external_id.startswith(EXTERNAL_PREFIX, autoescape=True))


@dataclass(frozen=True)
class Filters:
    """The filters of GET requests (``ids`` overrides all others, as the spec says)."""

    ids: list[str]
    service_codes: list[str]
    statuses: list[str]
    window: Window
    page: int
    page_size: int


async def find(session: AsyncSession, filters: Filters, *, publish_all: bool) -> list[Report]:
    """The reports a GET requests asks for, newest first."""
    query = in_scope(select(Report), publish_all=publish_all)
    if filters.ids:
        query = query.where(Report.id.in_(filters.ids))
    else:
        query = query.where(Report.received_at >= filters.window.start, Report.received_at <= filters.window.end)
        if filters.service_codes:
            query = query.where(Report.kind_code.in_(filters.service_codes))
        if set(filters.statuses) == {"open"}:
            query = query.where(Report.status.not_in(CLOSED))
        elif set(filters.statuses) == {"closed"}:
            query = query.where(Report.status.in_(CLOSED))
    query = query.order_by(Report.received_at.desc(), Report.seq.desc())
    query = query.offset((filters.page - 1) * filters.page_size).limit(filters.page_size)
    return list((await session.execute(query)).scalars())


async def find_one(
    session: AsyncSession, *, publish_all: bool, report_id: str | None = None, token: str | None = None
) -> Report:
    """One report by its id or by its token (the case number), or 404."""
    wanted = Report.id == report_id if report_id is not None else Report.case_number == token
    row = (await session.execute(in_scope(select(Report), publish_all=publish_all).where(wanted))).scalar_one_or_none()
    if row is None:
        what = f"service_request_id {report_id}" if report_id is not None else f"token {token}"
        raise Open311Error(404, f"{what} not found")
    return row


def _local(moment: datetime | None, tz: ZoneInfo) -> datetime | None:
    return moment.astimezone(tz).replace(microsecond=0) if moment is not None else None


def as_request(row: Report, catalogue: Catalogue, *, tz: ZoneInfo) -> ServiceRequest:
    """A report as the GeoReport feed shows it; the reporter's name and phone never leave intake."""
    kind = catalogue.kind(row.kind_code)
    requested = _local(row.received_at, tz)
    assert requested is not None
    return ServiceRequest(
        service_request_id=row.id,
        status="closed" if row.status in CLOSED else "open",
        status_notes=STATUS_NOTES.get(row.status),
        service_name=kind.name if kind else None,
        service_code=row.kind_code or "",
        description=row.content,
        agency_responsible=catalogue.unit_name(row.primary_unit),
        service_notice=catalogue.service_notice(kind) if kind else None,
        requested_datetime=requested,
        updated_datetime=_local(row.status_at, tz),
        expected_datetime=_local(row.complete_deadline, tz),
        address=row.address,
        lat=row.lat,
        long=row.lon,
        media_url=row.attachments[0] if row.attachments else None,
        jiesu_status=row.status,
    )
