"""Past its limit of writes in flight, intake answers 503 at once and stores nothing, instead of queueing."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.intake.app import create_app
from tests.helpers import running
from tests.services.intake.test_reports_api import GOOD, migrated


def reports(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "intake.db") as db:
        return [row[0] for row in db.execute("select external_id from reports order by external_id")]


async def test_a_write_past_the_limit_is_refused_at_once_and_stores_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = await migrated(tmp_path, max_in_flight=1)
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        """A client still sending its body: its write is in flight until the rest arrives."""
        text = json.dumps(GOOD | {"external_id": "slow"}).encode()
        yield text[:10]
        await release.wait()
        yield text[10:]

    async with running(create_app(settings)) as intake:
        first = asyncio.create_task(
            intake.post("/v1/reports", content=slow_body(), headers={"Content-Type": "application/json"})
        )
        for _ in range(100):  # until the first write is inside the app
            await asyncio.sleep(0.01)
            if intake_in_flight(intake) == 1:
                break
        with caplog.at_level(logging.WARNING, logger="jiesu.problems"):
            refused = await asyncio.wait_for(intake.post("/v1/reports", json=GOOD | {"external_id": "refused"}), 5)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["type"].endswith("overloaded") and problem["status"] == 503
        assert "nothing was stored" in problem["detail"]
        assert "raise JIESU_INTAKE_MAX_IN_FLIGHT" in caplog.text
        assert (await intake.get("/healthz")).status_code == 200  # reads are never refused
        release.set()
        assert (await first).status_code == 201
        again = await intake.post("/v1/reports", json=GOOD | {"external_id": "refused"})
        assert again.status_code == 201  # sent again after the wait: accepted, and stored once
        metrics = (await intake.get("/metrics")).text
    assert reports(tmp_path) == ["refused", "slow"]
    # The request metrics count it under its own route label.
    assert any('route="(overloaded)"' in line and 'status="503"' in line for line in metrics.splitlines())


def intake_in_flight(client: object) -> int:
    """Writes the app's limit counts as in flight (its middleware, found on the app the client talks to)."""
    app = client._transport.app  # type: ignore[attr-defined]
    layer = app.middleware_stack
    while layer is not None:
        if type(layer).__name__ == "InFlightLimit":
            return int(layer.in_flight)
        layer = getattr(layer, "app", None)
    raise AssertionError("no InFlightLimit on the app")
