"""Replaying every topic from its first offset changes nothing: consumers drop what they have already applied."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from services.registry import SERVICES
from tests.helpers import eventually
from tests.stack import Stack, embedded_stack


async def journey(stack: Stack) -> list[str]:
    ids = []
    for n, (content, unit) in enumerate([("路灯坏了不亮", "DEPT-UM"), ("公司拖欠工资", "DEPT-HRSS")]):
        case_id = str((await stack.report(source="hotline", external_id=f"r{n}", content=content))["id"])
        await stack.case_in(case_id, "dispatched")
        await stack.dispatch.post(f"/v1/cases/{case_id}/sign", json={"unit_code": unit})
        await stack.dispatch.post(f"/v1/cases/{case_id}/complete", json={"unit_code": unit, "result": "已办"})
        await stack.awaiting_feedback(case_id)
        answer = {"case_id": case_id, "resolved": n == 0, "satisfaction": "satisfied" if n == 0 else "dissatisfied"}
        await stack.evaluation.post("/v1/feedback", json=answer)
        await stack.case_in(case_id, "closed" if n == 0 else "reopened")
        await stack.report_in(case_id, "closed" if n == 0 else "reopened")
        ids.append(case_id)
    return ids


async def snapshot(stack: Stack, ids: list[str]) -> dict[str, Any]:
    state: dict[str, Any] = {"metrics": (await stack.evaluation.get("/v1/metrics", params={"grouping": "all"})).json()}
    for case_id in ids:
        state[f"case {case_id}"] = (await stack.dispatch.get(f"/v1/cases/{case_id}")).json()
        state[f"report {case_id}"] = (await stack.intake.get(f"/v1/reports/{case_id}")).json()
        state[f"evaluation {case_id}"] = (await stack.evaluation.get(f"/v1/evaluations/{case_id}")).json()
    return state


def outbox_rows(var: Path) -> dict[str, int]:
    counts = {}
    for name in ("intake", "dispatch", "evaluation"):
        with sqlite3.connect(var / f"{name}.db") as db:
            counts[name] = db.execute("select count(*) from outbox").fetchone()[0]
    return counts


def rewind(var: Path) -> int:
    """Every consumer group starts again from the first message the bus holds."""
    with sqlite3.connect(var / "bus.db") as db:
        return db.execute("delete from bus_offsets").rowcount


async def settled(stack: Stack, var: Path, ids: list[str]) -> dict[str, Any]:
    """The snapshot once every consumer group has applied (and committed) every message the bus holds: evaluation
    may trail a case's status."""

    def caught_up() -> bool:
        with sqlite3.connect(var / "bus.db") as db:
            last = dict(db.execute("select topic, max(position) from bus_messages group by topic"))
            done = db.execute("select topic, min(position) from bus_offsets group by topic").fetchall()
        return bool(done) and all(last.get(topic) == position for topic, position in done)

    async def read() -> bool:
        return await asyncio.to_thread(caught_up)

    await eventually(read, timeout=60, what="every group to read its topics to the end")
    return await snapshot(stack, ids)


async def replayed(var: Path, ids: list[str], **settings: Any) -> dict[str, Any]:
    """Start the services on a rewound bus, wait until every group has read everything again, snapshot them."""
    async with embedded_stack(var, timers=False, **settings) as stack:
        return await settled(stack, var, ids)


async def test_replaying_every_topic_from_the_start_changes_nothing(tmp_path: Path) -> None:
    async with embedded_stack(tmp_path, timers=False) as stack:
        ids = await journey(stack)
        before = await settled(stack, tmp_path, ids)
    emitted = await asyncio.to_thread(outbox_rows, tmp_path)

    assert await asyncio.to_thread(rewind, tmp_path) >= 4
    assert await replayed(tmp_path, ids) == before
    assert await asyncio.to_thread(outbox_rows, tmp_path) == emitted  # and nothing new was published


def age(var: Path, by: timedelta) -> None:
    """Move every outbox, inbox and bus time ``by`` into the past, as if the journey had happened that long ago."""
    columns = {"outbox": ["created_at", "published_at"], "inbox": ["processed_at"], "bus_messages": ["appended_at"]}
    for name in (*SERVICES, "bus"):
        with sqlite3.connect(var / f"{name}.db") as db:
            for table, times in columns.items():
                if not db.execute("select 1 from sqlite_master where name = ?", (table,)).fetchone():
                    continue
                for column in times:
                    rows = db.execute(f"select rowid, {column} from {table} where {column} is not null").fetchall()
                    moved = [(str(datetime.fromisoformat(value) - by), rowid) for rowid, value in rows]
                    db.executemany(f"update {table} set {column} = ? where rowid = ?", moved)


async def test_after_housekeeping_a_replay_still_changes_nothing(tmp_path: Path) -> None:
    keep_bus = {"keep_bus_days": 0}  # the bus keeps every message, so every inbox row must stay too
    async with embedded_stack(tmp_path, timers=False, **keep_bus) as stack:
        ids = await journey(stack)
        before = await settled(stack, tmp_path, ids)
    await asyncio.to_thread(age, tmp_path, timedelta(days=40))

    async with embedded_stack(tmp_path, timers=False, **keep_bus) as stack:
        pruned = {name: await app.state.runtime.housekeeping.run_once() for name, app in stack.apps.items()}
        assert await snapshot(stack, ids) == before
    assert all(p.outbox > 0 for p in pruned.values()), pruned  # published 40 days ago: gone
    assert all(p.inbox == 0 for p in pruned.values()), pruned  # the bus still holds their events
    assert await asyncio.to_thread(outbox_rows, tmp_path) == dict.fromkeys(SERVICES, 0)
    assert await asyncio.to_thread(rewind, tmp_path) >= 4
    assert await replayed(tmp_path, ids, **keep_bus) == before
    assert await asyncio.to_thread(outbox_rows, tmp_path) == dict.fromkeys(SERVICES, 0)  # nothing published again

    async with embedded_stack(tmp_path, timers=False) as stack:  # now the bus lets read messages go after 7 days
        runtimes = [app.state.runtime for app in stack.apps.values()]
        first = [await runtime.housekeeping.run_once() for runtime in runtimes]
        second = [await runtime.housekeeping.run_once() for runtime in runtimes]
        assert await snapshot(stack, ids) == before
    assert sum(p.bus for p in first) > 0  # every group has read them: the first service's run deleted them all
    assert sum(p.inbox for p in second) > 0  # and with nothing left to deliver again, the inbox lets go too
    with sqlite3.connect(tmp_path / "bus.db") as db:
        assert db.execute("select count(*) from bus_messages").fetchone() == (0,)
