"""Events applied in consumer chunks leave evaluation exactly as the same events applied one at a time.

A chunk reads and locks its cases and report places up front and writes them back once; a case judged,
dispatched, signed and completed within one chunk, a place arriving before or after its case, an event delivered
twice, and the two consumers (cases and reports) running at once must all come out as one-by-one handling does.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

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
        if event.type.endswith("dispatched") and rng.random() < 0.7:
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
        places = await session.execute(select(ReportPlace.__table__))
        reroutes = await session.execute(select(CaseReroute.__table__))
        counts = await session.execute(select(hotspot_counts).where(hotspot_counts.c.reports != 0))
        reporters = await session.execute(select(hotspot_reporters).where(hotspot_reporters.c.reports != 0))
        rolled = await session.execute(select(rollups))
        return {
            "cases": rows(cases),
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
