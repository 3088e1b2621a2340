"""Stored reports, their fingerprints and sealed reporters are exactly what the plain form of each computes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import service
from services.intake.app import MIGRATIONS
from services.intake.canonical import canonical_report
from services.intake.consumers import on_case_event
from services.intake.models import Report, messaging
from services.intake.schemas import ReportCreate
from shared import topics
from shared.db import buffered_writes, session_factory
from shared.events import CloudEvent
from shared.outbox import event_from_row
from shared.pii import (
    DEVELOPMENT_CALLER_SECRET,
    DEVELOPMENT_KEYS,
    Keyring,
    PersonalData,
    caller_key,
    mask_id_number,
    mask_name,
    mask_phone,
)
from tests.helpers import migrated_engine

SECRET = "rows-secret"
UTC8 = ZoneInfo("Asia/Shanghai")
KEYS = "k1:" + base64.b64encode(b"k" * 32).decode() + ",old:" + base64.b64encode(b"o" * 16).decode()

REPORTS: list[dict[str, Any]] = [
    {"source": "grid", "external_id": "g-1", "content": "井盖丢了"},
    {
        "source": "hotline",
        "external_id": 'h-"1"\\\n',
        "content": '引号"反斜杠\\ 换行\n制表\t控制\u0001 分隔\u2028 表情💡',
        "subject": "路灯",
        "address": "东城街道幸福路12号",
        "location": {"lat": 39.91, "lon": 116.3100000001},
        "grid_code": "G-01",
        "reporter": {"name": "欧阳娜娜", "phone": "+86 139-5724-6813", "id_number": "11010519491231002x"},
        "kind_code": "K1",
        "requested_departments": ["城管", 'dept"2'],
        "urgency": "urgent",
        "attachments": ["https://例子.com/照片 1.jpg?a=b#c", "http://example.org/"],
        "occurred_at": "2026-11-26T09:30:00.120+08:00",
    },
    {"source": "hotline", "external_id": "h-2", "content": "c", "reporter": {"name": "张三", "phone": "13812341234"}},
    {"source": "hotline", "external_id": "h-3", "content": "c", "reporter": {"name": None, "phone": None}},
    {"source": "town", "external_id": "t-1", "content": "c", "location": {"lat": -90, "lon": 180}},
    {"source": "town", "external_id": "t-2", "content": "  c  ", "occurred_at": "2026-01-01T00:00:00Z"},
    {"source": "grid", "external_id": "g-2", "content": "c", "location": {"lat": 1e-07, "lon": -0.0}},
]


def plain_canonical(report: ReportCreate) -> str:
    """The canonical text as fingerprints were always made: the JSON dump, sorted, no null ID number."""
    sent = report.model_dump(mode="json")
    if sent["reporter"] is not None and sent["reporter"]["id_number"] is None:
        del sent["reporter"]["id_number"]
    return json.dumps(sent, sort_keys=True, ensure_ascii=False)


def plain_fingerprint(report: ReportCreate, secret: str) -> str:
    digest = hashlib.sha256(plain_canonical(report).encode()).hexdigest()
    return hmac.new(secret.encode(), f"report-fingerprint:{digest}".encode(), hashlib.sha256).hexdigest()


def plain_caller_key(phone: str | None, secret: str) -> str | None:
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return hmac.new(secret.encode(), digits.encode(), hashlib.sha256).hexdigest() if digits else None


@pytest.mark.parametrize("body", REPORTS, ids=[r["external_id"] for r in REPORTS])
def test_the_canonical_text_and_fingerprint_are_those_of_the_plain_dump(body: dict[str, Any]) -> None:
    report = ReportCreate.model_validate(body)
    assert canonical_report(report) == plain_canonical(report)
    assert service.fingerprint(report, secret=SECRET) == plain_fingerprint(report, SECRET)
    assert service.fingerprint(report, secret="another") == plain_fingerprint(report, "another")


def test_the_canonical_text_names_every_field_of_a_report() -> None:
    # A field added to ReportCreate must be added to the canonical text too (or its digest would ignore it).
    written = json.loads(canonical_report(ReportCreate.model_validate(REPORTS[1])))
    assert set(written) == set(ReportCreate.model_fields)
    assert set(written["reporter"]) == {"name", "phone", "id_number"}


@pytest.mark.parametrize("phone", ["13812341234", "+86 139-5724-6813", "１３８ 1234", "٠١٢-345", "-- ", "", None])
def test_the_caller_key_is_the_hmac_of_the_phone_digits(phone: str | None) -> None:
    assert caller_key(phone, secret=SECRET) == plain_caller_key(phone, SECRET)
    assert caller_key(phone, secret="another") == plain_caller_key(phone, "another")


def test_a_sealed_value_opens_with_a_keyring_read_afresh_and_keeps_its_format() -> None:
    keyring = Keyring.parse(KEYS)
    value = {"name": "欧阳娜娜", "phone": "13957246813", "id_number": None}
    sealed = [keyring.seal(value, context="report-1/reporter") for _ in range(2)]
    assert sealed[0] != sealed[1], "a fresh nonce each time"
    plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    for one in sealed:
        kid, _, encoded = one.partition(":")
        assert kid == "k1"
        assert len(base64.urlsafe_b64decode(encoded)) == 12 + len(plain) + 16
        assert Keyring.parse(KEYS).open(one, context="report-1/reporter") == value


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = await migrated_engine(request.param, tmp_path, pg_databases, MIGRATIONS)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def plain_payload(row: Report, report: ReportCreate) -> dict[str, Any]:
    """What ``report.received`` has always carried: the stored row, the time of the event as it was sent."""
    masked = row.reporter_masked
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
        "reporter": None
        if masked is None
        else {
            "name_masked": masked.get("name"),
            "phone_masked": masked.get("phone"),
            "id_number_masked": masked.get("id_number"),
            "caller_key": row.caller_key,
        },
        "kind_code": row.kind_code,
        "requested_departments": row.requested_departments,
        "urgency": row.urgency,
        "attachments": row.attachments,
        "occurred_at": report.occurred_at.isoformat() if report.occurred_at else None,
        "received_at": row.received_at.isoformat(),
    }


async def test_stored_rows_and_events_are_those_of_the_plain_form(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    reports = [ReportCreate.model_validate(body) for body in REPORTS]
    personal = PersonalData(keyring=Keyring.parse(KEYS), caller_secret=SECRET)
    async with sessions() as session, session.begin():
        accepted = await service.accept_reports(
            session, reports, number_prefix="T", tz=ZoneInfo("Asia/Shanghai"), personal_data=personal
        )
    async with sessions() as session:
        rows = {r.id: r for r in (await session.execute(select(Report))).scalars()}
        outbox = (await session.execute(select(messaging.outbox).order_by(messaging.outbox.c.seq))).all()
        # A report without a reporter keeps JSON null in reporter_masked, as it always did.
        null_masks = (
            await session.execute(text("select count(*) from reports where reporter_masked is null"))
        ).scalar_one()
    assert null_masks == 0
    assert len(rows) == len(reports) == len(accepted) == len(outbox)
    opener = Keyring.parse(KEYS)
    for number, (report, answer, event_row) in enumerate(zip(reports, accepted, outbox, strict=True), start=1):
        row = rows[answer.id]
        assert (row.case_number, row.fingerprint) == (answer.case_number, answer.fingerprint)
        assert row.case_number is not None and row.case_number.endswith(f"{number:07d}")
        assert row.fingerprint == plain_fingerprint(report, SECRET)
        assert (row.source, row.external_id, row.content, row.subject, row.address) == (
            report.source,
            report.external_id,
            report.content,
            report.subject,
            report.address,
        )
        assert (row.lat, row.lon) == ((report.location.lat, report.location.lon) if report.location else (None, None))
        assert (row.grid_code, row.kind_code, row.urgency) == (report.grid_code, report.kind_code, report.urgency)
        assert row.requested_departments == report.requested_departments
        assert row.attachments == [str(url) for url in report.attachments]
        assert row.occurred_at == report.occurred_at
        assert (row.status, row.status_at, row.primary_unit, row.complete_deadline) == (
            "received",
            row.received_at,
            None,
            None,
        )
        reporter = report.reporter
        if reporter is None:
            assert (row.reporter_sealed, row.reporter_masked, row.caller_key) == (None, None, None)
        else:
            assert row.reporter_sealed is not None and row.reporter_sealed.startswith("k1:")
            context = service.reporter_context(row.id)
            assert opener.open(row.reporter_sealed, context=context) == reporter.model_dump()
            assert row.reporter_masked == {
                "name": mask_name(reporter.name),
                "phone": mask_phone(reporter.phone),
                "id_number": mask_id_number(reporter.id_number),
            }
            assert row.caller_key == plain_caller_key(reporter.phone, SECRET)
        event = event_from_row(event_row)
        assert (event.type, event.source, event.subject, event.time) == (
            topics.REPORT_RECEIVED,
            service.SOURCE,
            row.id,
            row.received_at,
        )
        assert (event_row.aggregatetype, event_row.aggregateid, event_row.topic) == ("report", row.id, topics.REPORTS)
        assert event.data == plain_payload(row, report)


def test_the_development_personal_data_still_parse() -> None:
    personal = PersonalData(keyring=Keyring.parse(DEVELOPMENT_KEYS), caller_secret=DEVELOPMENT_CALLER_SECRET)
    sealed = personal.keyring.seal({"name": "张三"}, context="c")
    assert Keyring.parse(DEVELOPMENT_KEYS).open(sealed, context="c") == {"name": "张三"}


@pytest.mark.parametrize("in_one_chunk", [False, True], ids=["one-by-one", "one-chunk"])
async def test_case_events_mirror_onto_the_report_as_the_read_then_write_rule_would(
    sessions: async_sessionmaker[AsyncSession], in_one_chunk: bool
) -> None:
    """Events arrive out of order, in other time zones, at the same instant and for reports intake never had;
    one by one (a transaction each) or as a consumer's chunk (written at its end)."""
    personal = PersonalData(keyring=Keyring.parse(KEYS), caller_secret=SECRET)
    async with sessions() as session, session.begin():
        [accepted] = await service.accept_reports(
            session, [ReportCreate.model_validate(REPORTS[0])], number_prefix="T", tz=UTC8, personal_data=personal
        )
    async with sessions() as session:
        start = (await session.execute(select(Report.status_at).where(Report.id == accepted.id))).scalar_one()
    later = [start + timedelta(seconds=s) for s in (0, 1, 2, 3, 4)]
    deadline = start + timedelta(days=3)
    events: list[dict[str, Any]] = [
        {"status": "judged", "at": later[1].astimezone(UTC8), "primary_unit": "DEPT-A"},
        {"status": "dispatched", "at": later[2], "complete_deadline": deadline.isoformat()},
        {"status": "received", "at": later[1] - timedelta(microseconds=1), "primary_unit": "OLD"},  # older: ignored
        {"status": "signed", "at": later[2].astimezone(UTC8)},  # same instant: applies, deadline kept
        {"status": "extended", "at": later[3], "complete_deadline": None},  # carries "no deadline": cleared
        {"status": "closed", "at": later[3] - timedelta(seconds=1), "complete_deadline": deadline.isoformat()},
    ]

    async def mirrored() -> tuple[Any, ...]:
        async with sessions() as session:
            row = (await session.execute(select(Report).where(Report.id == accepted.id))).scalar_one()
        return (row.status, row.status_at, row.primary_unit, row.complete_deadline)

    expected: dict[str, Any] = {"status": "received", "status_at": start, "primary_unit": None, "deadline": None}
    cloud_events = []
    for data in events:
        at = data.pop("at")
        cloud_events.append(
            CloudEvent(
                type="case.x",
                source="/jiesu/dispatch",
                subject=accepted.id,
                time=at,
                data={"case_id": accepted.id} | data,
            )
        )
        if at >= expected["status_at"]:  # the rule the report has always followed
            expected |= {"status": data["status"], "status_at": at}
            expected["primary_unit"] = data.get("primary_unit") or expected["primary_unit"]
            if "complete_deadline" in data:
                given = data["complete_deadline"]
                expected["deadline"] = datetime.fromisoformat(given) if given else None
        if not in_one_chunk:
            async with sessions() as session, session.begin():
                await on_case_event(session, cloud_events[-1])
                await on_case_event(session, replace(cloud_events[-1], data={"case_id": "no-such-report"}))
            assert await mirrored() == tuple(expected.values()), data
    if in_one_chunk:
        async with sessions() as session, session.begin(), buffered_writes(session):
            for event in cloud_events:
                await on_case_event(session, event)
                await on_case_event(session, replace(event, data=event.data | {"case_id": "no-such-report"}))
        assert await mirrored() == tuple(expected.values())
    assert expected["status"] == "extended" and expected["primary_unit"] == "DEPT-A"
    async with sessions() as session:
        assert (await session.execute(text("select count(*) from reports"))).scalar_one() == 1
