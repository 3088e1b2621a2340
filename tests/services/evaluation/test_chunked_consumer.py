"""Events applied in consumer chunks leave evaluation exactly as the same events applied one at a time.

A chunk reads and locks its cases and report places up front and writes them back once; a case judged,
dispatched, signed and completed within one chunk, a place arriving before or after its case, an event delivered
twice, and the two consumers (cases and reports) running at once must all come out as one-by-one handling does,
and as the handlers called without a chunk (ORM objects, every write at once).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as db_events
from sqlalchemy import select

from services.evaluation.chunk import CASE_COLUMNS, PLACE_COLUMNS
from services.evaluation.consumers import consumer_specs
from services.evaluation.models import (
    CaseReroute,
    EvaluatedCase,
    ReportPlace,
    hotspot_counts,
    hotspot_reporters,
    messaging,
    rollups,
)
from shared import topics
from shared.bus.base import Delivery
from shared.consumer import ConsumerSpec, handle_chunk
from shared.events import CloudEvent
from tests.services.evaluation.feed import TZ, Case, Evaluation, evaluation_app
from tests.services.evaluation.test_hotspot_correctness import drive


class Recorder:
    """Stands where the evaluation app would, keeping the events instead of applying them."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    async def send(self, event: CloudEvent) -> None:
        self.events.append(event)


def lifecycle(rng: random.Random, judged: list[CloudEvent]) -> list[CloudEvent]:
    """Signs, completions, returns and reopenings after each dispatch (some cases get none)."""
    extra: list[CloudEvent] = []
    for event in judged:
        if event.type == topics.CASE_DISPATCHED and rng.random() < 0.7:
            data = event.data
            case = Case(kind=data["kind_code"], category=data["category_code"], unit=data["primary_unit"])
            case.case_id, case.source, case.urgency = data["case_id"], data["source"], data["urgency"]
            at = event.time + timedelta(minutes=30)
            extra.append(case.signed(at, on_time=rng.random() < 0.8))
            step = rng.choice(["complete", "return", "complete-reopen", "none"])
            if step.startswith("complete"):
                extra.append(case.completed(at + timedelta(hours=5), on_time=rng.random() < 0.7))
            if step == "complete-reopen":
                extra.append(case.reopened(at + timedelta(hours=9)))
            if step == "return":
                extra.append(case.returned(at + timedelta(hours=1)))
    return extra


async def events_of(seed: int) -> list[CloudEvent]:
    """Random reports and case histories, in the order dispatch and intake would publish them."""
    rng = random.Random(seed)
    recorder = Recorder()
    await drive(recorder, rng, 120)  # type: ignore[arg-type]
    return recorder.events + lifecycle(rng, recorder.events)


def spec_for(specs: list[ConsumerSpec], event: CloudEvent) -> ConsumerSpec:
    reports, cases = (s for s in specs if topics.REPORT_RECEIVED in s.handlers), (s for s in specs if s.fallback)
    return next(reports) if event.type == topics.REPORT_RECEIVED else next(cases)


async def one_by_one(evaluation: Evaluation, events: list[CloudEvent]) -> None:
    for event in events:
        await evaluation.send(event)


async def in_chunks(evaluation: Evaluation, events: list[CloudEvent], rng: random.Random) -> None:
    """Each consumer takes its own stream in random chunk sizes, both at once, some events delivered twice."""
    specs = consumer_specs("", TZ, cell_m=evaluation.settings.hotspot_radius_m)
    streams: dict[str, list[Delivery]] = {s.group: [] for s in specs}
    for offset, event in enumerate(events):
        spec = spec_for(specs, event)
        delivery = Delivery(topic=spec.topics[0], partition=0, offset=offset, key=event.subject, event=event)
        streams[spec.group].append(delivery)
        if rng.random() < 0.05:
            streams[spec.group].append(delivery)  # redelivered, within the chunk or the next
    sessions = evaluation.app.state.runtime.sessions

    async def consume(spec: ConsumerSpec, deliveries: list[Delivery]) -> None:
        start = 0
        while start < len(deliveries):
            size = rng.choice([1, 7, 50, 200])
            await handle_chunk(deliveries[start : start + size], spec=spec, sessions=sessions, tables=messaging)
            start += size
            await asyncio.sleep(0)

    await asyncio.gather(*(consume(spec, streams[spec.group]) for spec in specs))


async def state_of(evaluation: Evaluation) -> dict[str, Any]:
    """Everything evaluation keeps about cases, places and counters, in a comparable form."""
    async with evaluation.app.state.runtime.sessions() as session:

        def rows(result: Any, drop: tuple[str, ...] = (), *, counters: bool = False) -> list[tuple[Any, ...]]:
            kept = [
                row
                for row in result.mappings()
                if not counters
                or any(isinstance(v, int | float) and not isinstance(v, bool) and v for v in row.values())
            ]
            return sorted(tuple(sorted((k, repr(v)) for k, v in row.items() if k not in drop)) for row in kept)

        cases = await session.execute(select(EvaluatedCase.__table__))
        # SQL NULL and a stored JSON null read back alike: ask the database which it holds
        nulls = await session.execute(
            select(
                EvaluatedCase.case_id,
                EvaluatedCase.score_breakdown.is_(None).label("breakdown_null"),
                EvaluatedCase.assignments.is_(None).label("assignments_null"),
            )
        )
        places = await session.execute(select(ReportPlace.__table__))
        reroutes = await session.execute(select(CaseReroute.__table__))
        counts = await session.execute(select(hotspot_counts).where(hotspot_counts.c.reports != 0))
        reporters = await session.execute(select(hotspot_reporters).where(hotspot_reporters.c.reports != 0))
        rolled = await session.execute(select(rollups))
        return {
            "cases": rows(cases),
            "nulls": rows(nulls),
            "places": rows(places),
            "reroutes": rows(reroutes, drop=("id",)),
            "hotspot_counts": rows(counts),
            "hotspot_reporters": rows(reporters),
            "rollups": rows(rolled, drop=("id",), counters=True),
        }


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_chunks_leave_the_same_state_as_events_one_at_a_time(
    database: str, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> None:
    events = await events_of(20261127)
    assert len({e.data.get("case_id") or e.data.get("id") for e in events}) == 120

    async def url(name: str) -> str:
        return await pg_databases() if database == "postgres" else f"sqlite+aiosqlite:///{tmp_path / name}.db"

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with evaluation_app(await url("single"), tmp_path / "a") as single:
        await one_by_one(single, events)
        want = await state_of(single)
    async with evaluation_app(await url("chunked"), tmp_path / "b") as chunked:
        await in_chunks(chunked, events, random.Random(7))
        got = await state_of(chunked)
        await in_chunks(chunked, events, random.Random(8))  # a replay of both topics changes nothing
        replayed = await state_of(chunked)
    assert len(want["cases"]) == 120 and want["hotspot_counts"] and want["rollups"] and want["reroutes"]
    for table in want:
        assert got[table] == want[table], table
    assert replayed == got


async def without_chunks(evaluation: Evaluation, events: list[CloudEvent]) -> None:
    """Each event's handler called on its own, no consumer chunk: ORM cases, every write at once."""
    specs = consumer_specs("", TZ, cell_m=evaluation.settings.hotspot_radius_m)
    sessions = evaluation.app.state.runtime.sessions
    for event in events:
        spec = spec_for(specs, event)
        handler = spec.handlers.get(event.type, spec.fallback)
        assert handler is not None
        async with sessions() as session, session.begin():
            await handler(session, event)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_chunk_rows_leave_the_same_state_as_orm_cases(
    database: str, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> None:
    """A chunk holds plain rows and writes them back in one statement each; the ORM path is the reference."""
    events = await events_of(20261128)

    async def url(name: str) -> str:
        return await pg_databases() if database == "postgres" else f"sqlite+aiosqlite:///{tmp_path / name}.db"

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with evaluation_app(await url("plain"), tmp_path / "a") as plain:
        await without_chunks(plain, events)
        want = await state_of(plain)
    async with evaluation_app(await url("chunked"), tmp_path / "b") as chunked:
        await in_chunks(chunked, events, random.Random(9))
        got = await state_of(chunked)
    assert want["reroutes"] and want["places"]
    for table in want:
        assert got[table] == want[table], table


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_chunk_updates_the_cases_it_changed_in_one_statement(
    database: str, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> None:
    """Signs, completions and places change different columns of different cases: still one UPDATE per chunk.

    On PostgreSQL the UPDATE is a part of the chunk's one writing statement, with the new rows and the counters.
    """
    events = await events_of(20261129)
    judged = [e for e in events if e.type in (topics.CASE_JUDGED, topics.CASE_DISPATCHED)]
    later = [e for e in events if e not in judged]
    steps = [e for e in later if e.type != topics.REPORT_RECEIVED]
    received = [e for e in later if e.type == topics.REPORT_RECEIVED]
    assert len(steps) > 10 and len(received) > 10

    async def url(name: str) -> str:
        return await pg_databases() if database == "postgres" else f"sqlite+aiosqlite:///{tmp_path / name}.db"

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with evaluation_app(await url("single"), tmp_path / "a") as single:
        await one_by_one(single, events)
        want = await state_of(single)
    async with evaluation_app(await url("chunked"), tmp_path / "b") as chunked:
        await one_by_one(chunked, judged)
        specs = consumer_specs("", TZ, cell_m=chunked.settings.hotspot_radius_m)
        runtime = chunked.app.state.runtime
        updates: list[int] = []
        writes: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
            text = statement.lstrip()
            if text.upper().startswith(("INSERT", "UPDATE", "WITH")) and not text.startswith("INSERT INTO inbox"):
                writes.append(text)
            if text.upper().startswith("UPDATE EVALUATED_CASES"):
                updates.append(len(parameters) if many else 1)
            elif part := re.search(r"UPDATE evaluated_cases SET .*? unnest\(\$(\d+)", text):
                updates.append(len(parameters[int(part[1]) - 1]))  # one array per column: its length is the rows

        db_events.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
        try:
            for chunk in (steps, received):
                spec = spec_for(specs, chunk[0])
                deliveries = [
                    Delivery(topic=spec.topics[0], partition=0, offset=i, key=e.subject, event=e)
                    for i, e in enumerate(chunk)
                ]
                await handle_chunk(deliveries, spec=spec, sessions=runtime.sessions, tables=messaging)
                assert len(updates) == 1 and updates[0] > 1
                if database == "postgres":
                    assert len(writes) == 1, writes  # with the counters: roll-ups, or hot spots of received reports
                    assert "UPDATE evaluated_cases" in re.findall(r"AS \((INSERT INTO \w+|UPDATE \w+)", writes[0])
                    assert re.search(r"AS \(INSERT INTO (rollups|hotspot_counts)", writes[0])
                updates.clear()
                writes.clear()
        finally:
            db_events.remove(runtime.engine.sync_engine, "before_cursor_execute", count)
        got = await state_of(chunked)
    for table in want:
        assert got[table] == want[table], table


def test_chunk_rows_have_every_column_of_their_tables() -> None:
    """A column added to the tables and not to the rows would silently never be written by a consumer."""
    assert tuple(EvaluatedCase.__table__.columns.keys()) == CASE_COLUMNS
    assert tuple(ReportPlace.__table__.columns.keys()) == PLACE_COLUMNS
