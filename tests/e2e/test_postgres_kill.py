"""kill -9 PostgreSQL under load: intake answers a clear 503 meanwhile, and every accepted report survives once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.fleet import SERVICES, Fleet, Load, OwnServer, audit
from tests.e2e.procs import auth_headers
from tests.helpers import eventually


@pytest.fixture
def postgres(tmp_path: Path, pg_admin_url: str) -> Iterator[OwnServer]:
    """A PostgreSQL server of this test's own (the shared one must not be killed)."""
    own = OwnServer("postgres", tmp_path / "pg")
    own.run("start")
    try:
        yield own
    finally:
        own.run("stop")


async def test_killing_postgresql_under_load_loses_and_doubles_nothing(
    tmp_path: Path, postgres: OwnServer, kafka_bootstrap: str, namespace: str
) -> None:
    urls = {service: postgres.database_url(f"jiesu_{service}") for service in SERVICES}
    fleet = Fleet(tmp_path, database_urls=urls, kafka=kafka_bootstrap, namespace=namespace)
    with fleet.running():
        intake = fleet.urls["intake"]
        load = Load(intake, rate=10)
        stop = asyncio.Event()
        posting = asyncio.create_task(load.run(stop))
        await eventually(lambda: load.accepted_at_least(30), timeout=60, what="30 reports accepted before the crash")
        await asyncio.to_thread(postgres.run, "kill")
        async with httpx.AsyncClient(timeout=15, headers=auth_headers()) as http:
            body = {"source": "hotline", "external_id": uuid.uuid4().hex, "content": "井盖丢了，很危险"}
            refused = await http.post(f"{intake}/v1/reports", json=body)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"] == "5"
            problem = refused.json()
            assert problem["type"].endswith("/database-unavailable") and problem["status"] == 503
            ready = await http.get(f"{intake}/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable" and ready.json()["checks"]["database"] is False
            await eventually(lambda: _refused(load, 10), timeout=30, what="the steady load to be refused with 503")
            await asyncio.to_thread(postgres.run, "start")
            after_restart = len(load.accepted)
            back = after_restart + 30
            await eventually(lambda: load.accepted_at_least(back), timeout=60, what="intake to accept again")
            stop.set()
            await posting
            # The one refused while down was never accepted: sending it again is a new report, not a replay.
            again = await http.post(f"{intake}/v1/reports", json=body)
            assert again.status_code == 201 and again.headers.get("idempotent-replayed") is None
            load.accepted.append(again.json()["id"])
        assert set(load.answers) <= {"201", "503"}, f"answers other than 201 and 503: {load.answers}"
        result = await audit(fleet.urls, load.accepted)
        assert result["cases"] == len(load.accepted)


async def _refused(load: Load, count: int) -> bool:
    return load.answers["503"] >= count
