"""The load generator's account of where events waited, from the services' outbox and inbox rows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path

import pytest
from sqlalchemy import insert

from bench.stages import stage_waits
from shared.db import create_engine

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def _ms(milliseconds: float) -> datetime:
    return T0 + timedelta(milliseconds=milliseconds)


Rows = list[dict[str, object]]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Awaitable[str]]:
    """A fresh database per service, on SQLite (embedded mode) or on the real PostgreSQL (distributed mode)."""
    if request.param == "postgresql":
        made: Callable[[], Awaitable[str]] = request.getfixturevalue("pg_databases")

        async def postgres(_service: str) -> str:
            return await made()

        return postgres

    async def sqlite(service: str) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}"

    return sqlite


async def _service_db(url: str, service: str, *, outbox: Rows, inbox: Rows) -> str:
    tables = import_module(f"services.{service}.models").messaging
    engine = create_engine(url, pooled=False)
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: tables.outbox.metadata.create_all(sync, [tables.outbox, tables.inbox]))
        common = {"aggregatetype": "x", "aggregateid": "x", "type": "t", "topic": "t", "source": "s", "payload": b"{}"}
        if outbox:
            rows = [common | {"event_time": row["created_at"]} | row for row in outbox]
            await conn.execute(insert(tables.outbox), rows)
        if inbox:
            await conn.execute(insert(tables.inbox), [{"event_type": "t"} | row for row in inbox])
    await engine.dispose()
    return url


async def test_relay_and_consumer_waits_per_stage(database: Callable[[str], Awaitable[str]]) -> None:
    intake = await _service_db(
        await database("intake"),
        "intake",
        outbox=[
            {"id": "r1", "created_at": _ms(0), "published_at": _ms(100)},
            {"id": "r2", "created_at": _ms(10), "published_at": _ms(30)},
            {"id": "r3", "created_at": _ms(20), "published_at": None},  # still in the outbox at the end
            {"id": "r4", "created_at": _ms(30), "published_at": _ms(50)},
            {"id": "old", "created_at": _ms(-60_000), "published_at": _ms(-59_000)},  # before the run
        ],
        inbox=[{"consumer": "jiesu-intake-status", "event_id": "c1", "processed_at": _ms(900)}],
    )
    dispatch = await _service_db(
        await database("dispatch"),
        "dispatch",
        outbox=[{"id": "c1", "created_at": _ms(400), "published_at": _ms(600)}],
        inbox=[
            {"consumer": "jiesu-dispatch-judge", "event_id": "r1", "processed_at": _ms(350)},
            {"consumer": "jiesu-dispatch-judge", "event_id": "r2", "processed_at": _ms(1030)},
            {"consumer": "jiesu-dispatch-judge", "event_id": "r4", "processed_at": _ms(150)},
        ],
    )

    found = await stage_waits({"intake": intake, "dispatch": dispatch}, since=T0, until=_ms(5000))

    # r1 waited 100 ms in intake's outbox, r2 and r4 20 ms; r3 was never published, "old" is before the run.
    assert found["relay_wait"]["intake"] == {"events": 3, "p50_ms": 20.0, "p99_ms": 100.0, "max_ms": 100.0}
    assert found["relay_wait"]["dispatch"]["p50_ms"] == 200.0
    assert found["unpublished_at_end"] == {"intake": 1, "dispatch": 0}
    # Written to intake's outbox -> applied by dispatch: r1 350 ms, r2 1,020 ms (the laggard), r4 120 ms.
    assert found["trip_to_consumer"]["jiesu-dispatch-judge"] == {
        "events": 3,
        "p50_ms": 350.0,
        "p99_ms": 1020.0,
        "max_ms": 1020.0,
    }
    assert found["trip_to_consumer"]["jiesu-intake-status"]["p50_ms"] == 500.0  # c1: written 400, applied 900
