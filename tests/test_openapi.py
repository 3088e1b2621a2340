"""Every service publishes its OpenAPI document, answers health checks and serves Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.registry import SERVICES
from shared.migrate import upgrade_async
from tests.helpers import running


@pytest.mark.parametrize("service", list(SERVICES))
async def test_openapi_and_health(service: str, tmp_path: Path) -> None:
    spec = SERVICES[service]
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade_async(script_location=spec.migrations, database_url=url)
    settings = spec.make_settings(database_url=url, embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}")
    async with running(spec.create_app(settings)) as client:
        document = (await client.get("/openapi.json")).json()
        assert document["openapi"].startswith("3.")
        assert any(path.startswith("/v1/") for path in document["paths"])
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["service"] == service
        metrics = (await client.get("/metrics")).text
        assert (
            f'jiesu_http_requests_total{{method="GET",route="/healthz",service="{service}",status="200"}} 1.0'
            in metrics
        )
        assert "jiesu_http_request_seconds_bucket" in metrics
        assert f'jiesu_background_healthy{{service="{service}"}} 1.0' in metrics


async def test_dispatch_serves_the_city_guide_by_default(tmp_path: Path) -> None:
    spec = SERVICES["dispatch"]
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade_async(script_location=spec.migrations, database_url=url)
    settings = spec.make_settings(database_url=url, embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}")
    async with running(spec.create_app(settings)) as client:
        guide = (await client.get("/v1/guide")).json()
    assert guide["counts"]["categories"] == 283 and guide["counts"]["kinds"] == 545
    assert guide["version"] == "city-2026.11"
    kind = guide["categories"][0]["kinds"][0]
    assert len(kind["examples"]) >= 3 and kind["primary"] and kind["time_limits"]["normal"]
