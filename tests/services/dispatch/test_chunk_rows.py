"""A consumer chunk writes exactly the rows judging one report at a time writes: cases, trail, tasks, timers, events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import Table, Text, cast, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatch import service
from services.dispatch.models import Case, CaseEntry, CaseTask, Timer, messaging
from services.dispatch.trail import clean_detail
from shared import topics
from tests.services.dispatch.chunking import (
    COURT,
    GARBAGE,
    GAS,
    LIGHT,
    NOISE,
    NOW,
    VAGUE,
    Databases,
    in_chunks,
    one_at_a_time,
    report,
)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Judging's clock, one second a reading; ``restart`` sets it back so two runs read the same times."""
    ticks = count()

    def now() -> datetime:
        return datetime(2026, 11, 26, 9, 30, tzinfo=UTC) + timedelta(seconds=next(ticks))

    def restart() -> None:
        nonlocal ticks
        ticks = count()

    monkeypatch.setattr(service, "utcnow", now)
    yield restart


async def rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Every stored column (JSON as the database holds it), without generated keys and write times."""

    def columns(table: Table, *, skip: tuple[str, ...] = ()) -> list[Any]:
        return [cast(c, Text) if c.type.__class__.__name__ == "JSON" else c for c in table.c if c.name not in skip]

    cases_t, trail_t = Case.__table__, CaseEntry.__table__
    tasks_t, timers_t = CaseTask.__table__, Timer.__table__
    assert isinstance(cases_t, Table) and isinstance(trail_t, Table)
    assert isinstance(tasks_t, Table) and isinstance(timers_t, Table)
    outbox = messaging.outbox
    async with sessions() as session:

        async def fetch(query: Any) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in await session.execute(query)]

        return {
            "cases": await fetch(select(*columns(cases_t)).order_by(cases_t.c.id)),
            "trail": await fetch(select(*columns(trail_t, skip=("seq",))).order_by(trail_t.c.seq)),
            "tasks": await fetch(select(*columns(tasks_t, skip=("id",))).order_by(tasks_t.c.id)),
            "timers": await fetch(select(*columns(timers_t, skip=("id",))).order_by(timers_t.c.id)),
            "events": [
                (*row[:-1], json.loads(row[-1]))
                for row in await fetch(
                    select(
                        outbox.c.aggregatetype,
                        outbox.c.aggregateid,
                        outbox.c.type,
                        outbox.c.topic,
                        outbox.c.source,
                        outbox.c.subject,
                        outbox.c.event_time,
                        outbox.c.payload,
                    ).order_by(outbox.c.seq)
                )
            ],
        }


async def test_a_chunk_writes_the_rows_one_report_at_a_time_writes(
    databases: Databases, clock: Callable[[], None]
) -> None:
    stored = [
        report(NOISE, at=NOW - timedelta(hours=2), address="西河大街8号", reporter={"phone": "13800000001"}),
        report(GARBAGE, at=NOW - timedelta(hours=1), address="西河大街3号"),
    ]
    chunk = [
        report(NOISE, at=NOW, address=" 西河大街8号 "),  # repeats the stored noise case
        report(LIGHT, at=NOW + timedelta(minutes=1), location={"lat": 39.9104, "lon": 116.3100}),
        report(LIGHT, at=NOW + timedelta(minutes=2), location={"lat": 39.9112, "lon": 116.3100}),  # repeats the last
        report(GAS, at=NOW + timedelta(minutes=3), address="西河大街8号"),
        report(COURT, at=NOW + timedelta(minutes=4)),
        report(VAGUE, at=NOW + timedelta(minutes=5)),
        report(
            NOISE,
            at=NOW + timedelta(minutes=6),
            source="town",
            location={"lat": 39.9300, "lon": 116.3300},
            requested_departments=["DEPT-TR", "DEPT-HC"],
            urgency="urgent",
        ),
        report(NOISE, at=NOW + timedelta(minutes=7), reporter={"phone": "13800000001"}),  # the stored case's caller
        report(GARBAGE, at=NOW + timedelta(minutes=8), subject="垃圾", grid_code="no-such-grid"),
    ]
    ctx, chunked = await databases()
    _, single = await databases()
    for event in stored:
        await in_chunks([event], ctx, chunked)
    await in_chunks(chunk, ctx, chunked)
    clock()
    await one_at_a_time(stored + chunk, ctx, single)

    got, expected = await rows(chunked), await rows(single)
    for table in expected:
        assert got[table] == expected[table], table
    assert len(got["cases"]) == len(stored) + len(chunk)
    names = [column.name for column in Case.__table__.c]
    territory, result, returns = (names.index(name) for name in ("territory", "result", "returns"))
    assert any(row[territory] == "null" for row in got["cases"]), "an unplaced report keeps JSON null as before"
    assert all(row[result] is None for row in got["cases"]), "a column never set stays SQL NULL"
    assert all(row[returns] == "[]" for row in got["cases"]), "a column never set takes its default"
    assert {e[2] for e in got["events"]} >= {
        topics.CASE_MERGED,
        topics.CASE_TRANSFERRED,
        topics.CASE_REFUSED,
        topics.CASE_DISPATCHED,
        topics.ASSIGNMENT_CREATED,
    }
    assert any(task[2] == "whistle" for task in got["tasks"]), "a whistled department's task is compared too"


@pytest.mark.parametrize(
    "detail",
    [
        None,
        {},
        {"kind_code": "K0501", "confidence": 0.9123, "reasons": ["a", "b"], "ok": True, "none": None, "n": 3},
        {"nested": {"deep": [1, 2.5, {"x": "中文"}]}, "empty": []},
        {"tuple": ("a", 1), "date": date(2026, 1, 2), "at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC)},
        {"keys": {1: "one", None: "none", 2.5: "float"}},
        {"tuples": [{"a": (1, 2)}]},
        {"nan": float("nan"), "inf": float("inf")},
    ],
)
def test_a_trail_detail_is_stored_as_a_json_round_trip_makes_it(detail: dict[str, Any] | None) -> None:
    expected = json.loads(json.dumps(detail or {}, ensure_ascii=False, default=str))
    cleaned = clean_detail(detail)
    assert json.dumps(cleaned, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert cleaned is not detail
    if detail:
        cleaned_again = clean_detail(detail)
        cleaned_again.setdefault("added", 1)
        assert "added" not in detail, "the stored detail is a copy, not the caller's dict"
