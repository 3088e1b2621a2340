"""Every service publishes its OpenAPI document, answers health checks and serves Prometheus metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import schemathesis

from services.registry import SERVICES
from shared.auth import AuthSettings
from shared.migrate import upgrade, upgrade_async
from tests.helpers import provision_key, running
from tests.services.intake.test_open311_swagger import run

ADMIN_KEY = "jsk_openapiadmin_a-key-for-the-schema-run"


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


@pytest.mark.parametrize("service", list(SERVICES))
def test_the_openapi_document_holds_against_the_running_service(service: str, tmp_path: Path) -> None:
    """Schemathesis, every check, with an admin key: no server error, and each answer as documented."""
    spec = SERVICES[service]
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(script_location=spec.migrations, database_url=url)
    auth = AuthSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    asyncio.run(provision_key(auth.database_url, key=ADMIN_KEY, role="admin"))
    settings = spec.make_settings(
        database_url=url, embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}", consumers=False
    )
    config = schemathesis.Config.from_dict(
        {
            "seed": 2026,
            "generation": {"max-examples": 25, "database": "none"},
            # Every check. A schema-valid request may still break a rule of the domain the schema cannot state (a kind
            # the guide does not have, an ID number whose check digit is wrong, a grid report without its grid, a
            # scoped role without its scope): those answer 400/422 naming the field, so they count as handled here.
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429"]
                },
            },
            "auth": {"openapi": {"bearer": {"bearer": ADMIN_KEY}, "api_key": {"api_key": ADMIN_KEY}}},
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", spec.create_app(settings, auth=auth), config=config)
    # Open311's refusals are its own errors list; intake's test_open311_own_openapi.py holds them to every check.
    schema = schema.exclude(path_regex="^/open311/")
    outcome = run(schema)
    assert outcome.errors == []
    server_errors = [f for f in outcome.failures if f[1] == "not_a_server_error"]
    assert server_errors == [], "\n\n".join(f"{op}\n{detail}" for op, _, detail in server_errors)
    assert outcome.failures == [], "\n\n".join(f"{op} {check}\n{detail}" for op, check, detail in outcome.failures)


async def test_refusals_are_documented_as_sent_and_occurred_at_takes_no_number(tmp_path: Path) -> None:
    spec = SERVICES["intake"]
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade_async(script_location=spec.migrations, database_url=url)
    settings = spec.make_settings(database_url=url, embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}")
    async with running(spec.create_app(settings)) as client:
        document = (await client.get("/openapi.json")).json()
        post = document["paths"]["/v1/reports"]["post"]
        # Guarded operations say how to send a credential; open ones (health) take none.
        assert post["security"] == [{"bearer": []}]
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert "security" not in document["paths"]["/healthz"]["get"]
        both = document["paths"]["/open311/v2/requests.{response_format}"]["post"]["security"]
        assert both == [{"bearer": []}, {"api_key": []}]
        for status in ("401", "403", "422", "429"):
            assert list(post["responses"][status]["content"]) == ["application/problem+json"], status
        assert "404" in document["paths"]["/v1/reports/{report_id}"]["get"]["responses"]
        body = {"source": "hotline", "external_id": "n1", "content": "路灯坏了", "occurred_at": 1764150000}
        refused = await client.post("/v1/reports", json=body)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "occurred_at"
        accepted = await client.post("/v1/reports", json=body | {"occurred_at": "2026-11-26T09:30:00+08:00"})
        assert accepted.status_code == 201
