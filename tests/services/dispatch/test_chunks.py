"""A chunk of events in one transaction judges exactly as one event at a time would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatch import trail
from services.dispatch.app import MIGRATIONS
from services.dispatch.consumers import consumer_specs
from services.dispatch.context import DispatchContext
from services.dispatch.models import Case, Timer, messaging
from services.dispatch.settings import DispatchSettings
from shared import topics
from shared.bus.base import Delivery
from shared.consumer import handle_chunk
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.guide import SEED_GUIDE
from shared.migrate import upgrade_async


@pytest.fixture(params=["sqlite", "postgresql"])
async def dispatch(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> AsyncIterator[tuple[DispatchContext, async_sessionmaker[AsyncSession]]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dispatch.db'}" if request.param == "sqlite" else await pg_databases()
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)
    try:
        yield DispatchContext.load(DispatchSettings(database_url=url, guide_path=SEED_GUIDE)), session_factory(engine)
    finally:
        await engine.dispose()


def received(number: int, **extra: Any) -> CloudEvent:
    data = {
        "id": str(uuid.uuid4()),
        "case_number": f"JS20261126{number:07d}",
        "source": "hotline",
        "content": "工地半夜施工，噪音扰民",
        "address": "西河大街8号",
        "received_at": datetime(2026, 11, 26, 9, number, tzinfo=UTC).isoformat(),
    } | extra
    return CloudEvent(type=topics.REPORT_RECEIVED, source="/jiesu/intake", subject=data["id"], data=data)


def deliveries(events: list[CloudEvent], topic: str) -> list[Delivery]:
    return [Delivery(topic=topic, partition=0, offset=i, key=e.subject, event=e) for i, e in enumerate(events)]


async def outbox_types(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(messaging.outbox.c.type, messaging.outbox.c.aggregateid).order_by(messaging.outbox.c.seq)
        )
        return [(row.type, row.aggregateid) for row in rows]


async def test_a_duplicate_in_the_same_chunk_merges_and_a_repeat_judges_once(
    dispatch: tuple[DispatchContext, async_sessionmaker[AsyncSession]],
) -> None:
    ctx, sessions = dispatch
    [judge, _, _] = consumer_specs("", ctx)
    first, second = received(1), received(2)
    again = CloudEvent(type=first.type, source=first.source, subject=first.subject, data=first.data)  # new event id
    chunk = deliveries([first, second, again, first], topics.REPORTS)
    assert await handle_chunk(chunk, spec=judge, sessions=sessions, tables=messaging) == 3
    async with sessions() as session:
        cases = {c.id: c for c in (await session.execute(select(Case))).scalars()}
        assert set(cases) == {first.data["id"], second.data["id"]}, "the repeated report opened no second case"
        kept, merged = cases[first.data["id"]], cases[second.data["id"]]
        assert (kept.status, merged.status, merged.merged_into) == ("dispatched", "merged", kept.id)
        assert kept.merged_cases == [merged.id]
        for case in (kept, merged):
            entries = await trail.entries_of(session, case.id)
            assert trail.verify(entries) == (True, None)
            assert entries[-1].hash == case.trail_head
        assert [e.action for e in await trail.entries_of(session, kept.id)][-1] == "absorb"
        timers = (await session.execute(select(Timer.case_id))).scalars().all()
        assert set(timers) == {kept.id}, "only the dispatched case has deadline timers"
    events = await outbox_types(sessions)
    assert (topics.ASSIGNMENT_CREATED, kept.id) in events
    assert (topics.CASE_MERGED, merged.id) in events
    assert [t for t, case_id in events if case_id == kept.id][:2] == [topics.CASE_JUDGED, topics.CASE_DISPATCHED]


async def test_a_refused_action_in_a_chunk_keeps_what_the_events_before_it_wrote(
    dispatch: tuple[DispatchContext, async_sessionmaker[AsyncSession]],
) -> None:
    ctx, sessions = dispatch
    [judge, _, actions] = consumer_specs("", ctx)
    report = received(3)
    await handle_chunk(deliveries([report], topics.REPORTS), spec=judge, sessions=sessions, tables=messaging)
    async with sessions() as session:
        unit = (await session.get(Case, report.data["id"])).primary_unit  # type: ignore[union-attr]
    sign = CloudEvent(
        type=topics.UNIT_ACTION,
        source="/units",
        data={"case_id": report.data["id"], "action": "sign", "unit_code": unit},
    )
    refused = CloudEvent(
        type=topics.UNIT_ACTION,
        source="/units",
        data={"case_id": report.data["id"], "action": "complete", "unit_code": "DEPT-NOBODY", "result": "x"},
    )
    before = len(await outbox_types(sessions))
    applied = await handle_chunk(
        deliveries([sign, refused], topics.RESPONSES), spec=actions, sessions=sessions, tables=messaging
    )
    assert applied == 2
    async with sessions() as session:
        case = await session.get(Case, report.data["id"])
        assert case is not None and case.status == "signed"
        assert trail.verify(await trail.entries_of(session, case.id)) == (True, None)
    written = [t for t, _ in (await outbox_types(sessions))[before:]]
    assert topics.CASE_SIGNED in written, "the sign before the refusal kept its events"
    assert written[-1] == topics.ACTION_REJECTED
