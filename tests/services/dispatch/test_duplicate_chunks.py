"""Duplicates (合并) found by the chunk's one query merge exactly as judging the reports one at a time does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.dispatch import service, trail
from services.dispatch.app import MIGRATIONS
from services.dispatch.consumers import consumer_specs
from services.dispatch.context import DispatchContext
from services.dispatch.models import Case, CaseTask, Timer, messaging
from services.dispatch.settings import DispatchSettings
from shared import topics
from shared.bus.base import Delivery
from shared.consumer import handle_chunk
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.guide import SEED_GUIDE
from shared.migrate import upgrade_async

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
NOISE = "工地半夜还在施工，噪音吵得睡不着"  # K0501, DEPT-EE with DEPT-HC co-handling (协办)
LIGHT = "小区门口的路灯坏了好几天了晚上一片漆黑"  # K0101
GARBAGE = "小区垃圾桶三天没人清理了，臭气熏天"  # K0202, the street handles it
GAS = "楼道里有很浓的煤气味，怕是燃气泄漏了"  # transferred to 119
COURT = "我和开发商的房屋纠纷法院已立案，希望你们催一下"  # refused: already in court
Databases = Callable[[], Awaitable[tuple[DispatchContext, async_sessionmaker[AsyncSession]]]]
_numbers = count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
async def databases(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> AsyncIterator[Databases]:
    """Fresh migrated dispatch databases of the dialect, as many as the test asks for."""
    engines: list[AsyncEngine] = []

    async def make() -> tuple[DispatchContext, async_sessionmaker[AsyncSession]]:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / f'dispatch{len(engines)}.db'}"
        else:
            url = await pg_databases()
        await upgrade_async(script_location=MIGRATIONS, database_url=url)
        engine = create_engine(url)
        engines.append(engine)
        ctx = DispatchContext.load(DispatchSettings(database_url=url, guide_path=SEED_GUIDE))
        return ctx, session_factory(engine)

    yield make
    for engine in engines:
        await engine.dispose()


def report(content: str, *, at: datetime, **extra: Any) -> CloudEvent:
    data = {
        "id": str(uuid.uuid4()),
        "case_number": f"JS20261126{next(_numbers):07d}",
        "source": "hotline",
        "content": content,
        "received_at": at.isoformat(),
    } | extra
    return CloudEvent(type=topics.REPORT_RECEIVED, source="/jiesu/intake", subject=data["id"], data=data)


async def in_chunks(
    events: list[CloudEvent], ctx: DispatchContext, sessions: async_sessionmaker[AsyncSession], *, size: int = 50
) -> None:
    """Through the judge consumer's chunk path, ``size`` reports per transaction."""
    [judge, _, _] = consumer_specs("", ctx)
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        delivered = [
            Delivery(topic=topics.REPORTS, partition=0, offset=i, key=e.subject, event=e) for i, e in enumerate(chunk)
        ]
        assert await handle_chunk(delivered, spec=judge, sessions=sessions, tables=messaging) == len(chunk)


async def one_at_a_time(
    events: list[CloudEvent], ctx: DispatchContext, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Each report judged in its own transaction, outside any consumer chunk."""
    for event in events:
        async with sessions() as session, session.begin():
            assert await service.judge_report(session, ctx, event.data) is not None


async def outcome(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """What users see of the judged reports: each case's decision and merge, tasks, timers, trail and events."""
    async with sessions() as session:
        cases = {
            c.id: (
                c.status,
                c.decision,
                c.merged_into,
                c.merged_cases,
                c.judge_reasons,
                c.kind_code,
                c.primary_unit,
                c.cooperating_units,
            )
            for c in (await session.execute(select(Case))).scalars()
        }
        trails = {}
        for case_id in cases:
            entries = await trail.entries_of(session, case_id)
            assert trail.verify(entries) == (True, None)
            trails[case_id] = [(e.action, e.from_status, e.to_status) for e in entries]
        tasks = sorted(
            (t.case_id, t.unit_code, t.role, t.status, t.checkin_deadline is not None)
            for t in (await session.execute(select(CaseTask))).scalars()
        )
        timers = sorted(
            (t.case_id, t.kind, t.unit_code or "") for t in (await session.execute(select(Timer))).scalars()
        )
        events = (
            await session.execute(
                select(messaging.outbox.c.aggregateid, messaging.outbox.c.type).order_by(messaging.outbox.c.seq)
            )
        ).all()
    return {"cases": cases, "trails": trails, "tasks": tasks, "timers": timers, "events": [tuple(e) for e in events]}


async def test_a_chunk_of_duplicates_merges_as_one_at_a_time_does(databases: Databases) -> None:
    noise_site = {"address": "西河大街8号", "reporter": {"phone": "13800000001"}}
    stored = [
        report(NOISE, at=NOW - timedelta(hours=2), **noise_site),
        report(LIGHT, at=NOW - timedelta(hours=100), location={"lat": 39.9100, "lon": 116.3100}),  # out of window
    ]
    chunk = [
        report(NOISE, at=NOW, address=" 西河大街8号 "),  # the stored noise case's address
        report(LIGHT, at=NOW + timedelta(minutes=1), location={"lat": 39.9104, "lon": 116.3100}),
        report(LIGHT, at=NOW + timedelta(minutes=2), location={"lat": 39.9112, "lon": 116.3100}),  # 90 m from it
        report(GARBAGE, at=NOW + timedelta(minutes=3), address="西河大街3号", reporter={"phone": "13900000002"}),
        report(GARBAGE, at=NOW + timedelta(minutes=4), address="西河大街99号", reporter={"phone": "139-0000-0002"}),
        report(GAS, at=NOW + timedelta(minutes=5), address="西河大街8号"),
        report(COURT, at=NOW + timedelta(minutes=6), address="西河大街8号"),
        report(
            NOISE,
            at=NOW + timedelta(minutes=7),
            source="town",
            location={"lat": 39.9300, "lon": 116.3300},
            requested_departments=["DEPT-TR", "DEPT-HC"],
        ),
        report(NOISE, at=NOW + timedelta(minutes=8), address="西河大街8号", reporter={"phone": "13700000003"}),
        report(NOISE, at=NOW + timedelta(minutes=9), location={"lat": 39.9301, "lon": 116.3301}),
    ]
    ctx, chunked = await databases()
    _, single = await databases()
    await in_chunks(stored, ctx, chunked, size=1)
    await in_chunks(chunk, ctx, chunked)
    await one_at_a_time(stored + chunk, ctx, single)

    got, expected = await outcome(chunked), await outcome(single)
    assert got == expected
    cases = got["cases"]
    merged_into = [cases[e.data["id"]][2] for e in chunk]
    noise, light = stored[0].data["id"], chunk[1].data["id"]
    garbage, town = chunk[3].data["id"], chunk[7].data["id"]
    assert merged_into == [noise, None, light, None, garbage, None, None, None, noise, town]
    assert [cases[e.data["id"]][1] for e in chunk] == [
        "merge",
        "dispatch",
        "merge",
        "dispatch",
        "merge",
        "transfer",
        "refuse",
        "dispatch",
        "merge",
        "merge",
    ]
    assert cases[noise][3] == [chunk[0].data["id"], chunk[8].data["id"]], "the stored case lists both duplicates"
    assert cases[stored[1].data["id"]][3] == [], "a case older than the window takes no duplicate"
    whistled = [(unit, role, due) for case_id, unit, role, _, due in got["tasks"] if case_id == town]
    assert whistled == [("DEPT-HC", "whistle", True), ("DEPT-TR", "whistle", True)]
    assert [t for t in got["timers"] if t[0] == town and t[1] == "checkin_missed"] == [
        (town, "checkin_missed", "DEPT-HC"),
        (town, "checkin_missed", "DEPT-TR"),
    ]


async def test_each_report_of_a_chunk_keeps_its_own_window_of_the_oldest_open_cases(databases: Databases) -> None:
    # Five open cases only the earlier report's window reaches, then 197 both reach, then the one both reports repeat.
    early = [report(NOISE, at=NOW - timedelta(hours=70, minutes=i), address=f"南街{i}号") for i in range(5)]
    middle = [
        report(NOISE, at=NOW - timedelta(hours=60) + timedelta(minutes=i), address=f"北街{i}号") for i in range(197)
    ]
    repeated = report(NOISE, at=NOW - timedelta(hours=50), address="东湖路1号")
    chunk = [
        report(NOISE, at=NOW, address="东湖路1号"),  # its oldest 200 end before the repeated case: a new case
        report(NOISE, at=NOW + timedelta(hours=10), address="东湖路1号"),  # the early five are out of its window
    ]
    ctx, chunked = await databases()
    _, single = await databases()
    await in_chunks([*early, *middle, repeated], ctx, chunked)
    await in_chunks(chunk, ctx, chunked)
    await one_at_a_time([*early, *middle, repeated, *chunk], ctx, single)

    got, expected = await outcome(chunked), await outcome(single)
    assert got["cases"] == expected["cases"]
    first, second = (got["cases"][e.data["id"]] for e in chunk)
    assert (first[1], first[2]) == ("dispatch", None)
    assert (second[1], second[2]) == ("merge", repeated.data["id"])
