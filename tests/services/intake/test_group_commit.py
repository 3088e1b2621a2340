"""Concurrent single reports share commits: each is stored once, answered after its commit, replays and clashes kept."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.intake import service
from services.intake.app import MIGRATIONS, create_app
from services.intake.settings import IntakeSettings
from shared.migrate import upgrade_async
from tests.helpers import running


def report(number: int, *, content: str = "幸福路的路灯坏了三天了") -> dict[str, Any]:
    return {"source": "hotline", "external_id": f"g-{number:03d}", "content": f"{content}（{number}）"}


async def _intake(url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    settings = IntakeSettings(
        database_url=url, embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}", consumers=False
    )
    async with running(create_app(settings)) as client:
        yield client


@pytest.fixture(params=["sqlite", "postgresql"])
async def intake(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}" if request.param == "sqlite" else await pg_databases()
    async for client in _intake(url, tmp_path):
        yield client


async def test_concurrent_reports_are_each_stored_once_with_replays_and_clashes_answered_per_report(
    intake: httpx.AsyncClient,
) -> None:
    fresh = [report(n) for n in range(60)]
    repeats = [report(n) for n in range(0, 60, 6)]  # the same report again: a replay (201, Idempotent-Replayed)
    clashes = [report(n, content="另一件事") for n in range(3, 60, 12)]  # a used id for another report: 409
    answers = await asyncio.gather(*(intake.post("/v1/reports", json=body) for body in fresh + repeats + clashes))
    by_id: dict[str, list[httpx.Response]] = {}
    for body, answer in zip(fresh + repeats + clashes, answers, strict=True):
        by_id.setdefault(body["external_id"], []).append(answer)
    created = [a for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a.headers]
    assert len(created) == 60, "each new external id is created exactly once"
    numbers = sorted(a.json()["case_number"] for a in created)
    assert len(set(numbers)) == 60
    assert [int(n[-7:]) for n in numbers] == list(range(1, 61)), "case numbers stay consecutive"
    for external_id, group in by_id.items():
        ok = [a for a in group if a.status_code == 201]
        assert len({a.json()["id"] for a in ok}) == 1, f"{external_id}: every replay names the first report"
        assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in ok) == len(ok) - 1
    refused = [a for a in answers if a.status_code == 409]
    assert len(refused) == len(clashes)
    assert all(a.json()["errors"][0]["field"] == "external_id" for a in refused)
    for answer in created[:5]:  # answered only after the commit: it can be read back at once
        read = await intake.get(f"/v1/reports/{answer.json()['id']}")
        assert read.status_code == 200 and read.json()["case_number"] == answer.json()["case_number"]


async def test_a_group_stores_exactly_the_accepted_reports_and_their_events(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    async for client in _intake(url, tmp_path):
        bodies = [report(n) for n in range(40)] + [report(n, content="别的") for n in range(5)]
        answers = await asyncio.gather(*(client.post("/v1/reports", json=body) for body in bodies))
        assert sum(a.status_code == 201 for a in answers) == 40

    def counts() -> tuple[int, int]:
        with sqlite3.connect(tmp_path / "intake.db") as db:
            return (
                db.execute("select count(*) from reports").fetchone()[0],
                db.execute("select count(*) from outbox where type = 'jiesu.intake.report.received.v1'").fetchone()[0],
            )

    assert await asyncio.to_thread(counts) == (40, 40)


async def test_a_commit_whose_acknowledgement_is_lost_is_a_503_and_sending_again_answers_the_stored_report(
    intake: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection dies after the database made the commit durable, before it said so: the one moment where the
    # service cannot know the outcome. The 503 must not promise that nothing was stored, and the same body again
    # must find the report instead of making a second one.
    cut: list[bool] = [True]
    accept_reports = service.accept_reports

    async def marked(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        session.info["stores reports"] = True
        return await accept_reports(session, *args, **kwargs)

    def lose_acknowledgement(session: Session) -> None:
        if cut and session.info.get("stores reports"):
            cut.clear()
            raise ConnectionError("server closed the connection after COMMIT")

    monkeypatch.setattr(service, "accept_reports", marked)
    first = report(1)
    event.listen(Session, "after_commit", lose_acknowledgement)
    try:
        lost = await intake.post("/v1/reports", json=first)
    finally:
        event.remove(Session, "after_commit", lose_acknowledgement)
    assert lost.status_code == 503, lost.text
    assert lost.headers["content-type"] == "application/problem+json" and lost.headers["retry-after"] == "5"
    problem = lost.json()
    assert problem["type"].endswith("/database-unavailable")
    assert "may have been stored" in problem["detail"] and "external_id" in problem["detail"]
    again = await intake.post("/v1/reports", json=first)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true", again.text
    assert again.json()["case_number"].endswith("0000001"), "the report stored by the lost commit, not a second"
    fresh = await intake.post("/v1/reports", json=report(2))
    assert fresh.status_code == 201 and fresh.json()["case_number"].endswith("0000002"), "no number went to a copy"
