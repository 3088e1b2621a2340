"""Replaying every topic from its first offset changes nothing: consumers drop what they have already applied."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

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


async def test_replaying_every_topic_from_the_start_changes_nothing(tmp_path: Path) -> None:
    async with embedded_stack(tmp_path, timers=False) as stack:
        ids = await journey(stack)
        before = await snapshot(stack, ids)
    emitted = await asyncio.to_thread(outbox_rows, tmp_path)

    def rewind() -> int:
        with sqlite3.connect(tmp_path / "bus.db") as db:
            return db.execute("delete from bus_offsets").rowcount

    assert await asyncio.to_thread(rewind) >= 4  # every consumer group starts again from the first message
    async with embedded_stack(tmp_path, timers=False) as stack:

        def caught_up() -> bool:
            with sqlite3.connect(tmp_path / "bus.db") as db:
                last = dict(db.execute("select topic, max(position) from bus_messages group by topic"))
                done = db.execute("select topic, min(position) from bus_offsets group by topic").fetchall()
            return bool(done) and all(last.get(topic) == position for topic, position in done)

        async def replayed() -> bool:
            return await asyncio.to_thread(caught_up)

        await eventually(replayed, timeout=60, what="every group to re-read its topics")
        after = await snapshot(stack, ids)
    assert after == before
    assert await asyncio.to_thread(outbox_rows, tmp_path) == emitted  # and nothing new was published
