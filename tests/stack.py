"""The three services in one test process, wired as ``jiesu up`` wires them, or to PostgreSQL and Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from services.registry import SERVICES
from shared.auth import MIGRATIONS as AUTH_MIGRATIONS
from shared.auth import AuthSettings
from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.db import create_engine
from shared.guide import SEED_GUIDE
from shared.migrate import upgrade_async
from tests.helpers import eventually, running


@dataclass
class Stack:
    """Clients of the three running services."""

    intake: httpx.AsyncClient
    dispatch: httpx.AsyncClient
    evaluation: httpx.AsyncClient
    apps: dict[str, FastAPI]

    async def report(self, **body: Any) -> dict[str, Any]:
        """Post a report and return the 201 answer."""
        answer = await self.intake.post("/v1/reports", json=body)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def case_in(self, case_id: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until dispatch shows the case in one of the statuses."""

        async def probe() -> dict[str, Any] | None:
            answer = await self.dispatch.get(f"/v1/cases/{case_id}")
            body: dict[str, Any] = answer.json()
            return body if answer.status_code == 200 and body["status"] in statuses else None

        return await eventually(probe, timeout=timeout, what=f"case {case_id} to be {'/'.join(statuses)}")

    async def report_in(self, report_id: str, status: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until intake shows the report's case in a status."""

        async def probe() -> dict[str, Any] | None:
            body: dict[str, Any] = (await self.intake.get(f"/v1/reports/{report_id}")).json()
            return body if body.get("status") == status else None

        return await eventually(probe, timeout=timeout, what=f"report {report_id} to show {status}")

    async def awaiting_feedback(self, case_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until evaluation has seen the completion."""

        async def probe() -> dict[str, Any] | None:
            answer = await self.evaluation.get(f"/v1/evaluations/{case_id}")
            body: dict[str, Any] = answer.json()
            return body if answer.status_code == 200 and body["awaiting_feedback"] else None

        return await eventually(probe, timeout=timeout, what=f"evaluation to await feedback on {case_id}")


@asynccontextmanager
async def embedded_stack(var: Path, **overrides: Any) -> AsyncIterator[Stack]:
    """SQLite per service under ``var`` and one embedded bus, relays and consumers running."""
    bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{var / 'bus.db'}"))
    await bus.start()
    urls = {name: f"sqlite+aiosqlite:///{var / f'{name}.db'}" for name in SERVICES}
    # One credential store for the three, as `jiesu up` has it.
    auth = AuthSettings(database_url=f"sqlite+aiosqlite:///{var / 'auth.db'}")
    await upgrade_async(script_location=AUTH_MIGRATIONS, database_url=auth.database_url)
    try:
        async with _stack(urls, bus=bus, settings={"bus": "embedded", **overrides}, auth=auth) as stack:
            yield stack
    finally:
        await bus.close()


@asynccontextmanager
async def _stack(
    urls: dict[str, str], *, bus: Bus | None, settings: dict[str, Any], auth: AuthSettings | None = None
) -> AsyncIterator[Stack]:
    clients: dict[str, httpx.AsyncClient] = {}
    apps: dict[str, FastAPI] = {}
    async with AsyncExitStack() as exits:
        for name, spec in SERVICES.items():
            await upgrade_async(script_location=spec.migrations, database_url=urls[name])
            # The seed guide: the tests name its kinds and units.
            pinned = {"guide_path": SEED_GUIDE} if name == "dispatch" else {}
            config = spec.make_settings(database_url=urls[name], relay=True, consumers=True, **pinned, **settings)
            apps[name] = spec.create_app(config, bus=bus, auth=auth)
            # Each client carries an admin key; tests of roles make their own with tests.helpers.credential.
            clients[name] = await exits.enter_async_context(running(apps[name]))
        yield Stack(**clients, apps=apps)


@asynccontextmanager
async def distributed_stack(urls: dict[str, str], *, kafka: str, namespace: str) -> AsyncIterator[Stack]:
    """PostgreSQL per service and the real Kafka broker, topics prefixed by ``namespace``."""
    async with _stack(
        urls,
        bus=None,
        settings={"bus": "kafka", "kafka_bootstrap_servers": kafka, "topic_namespace": namespace},
    ) as stack:
        yield stack
