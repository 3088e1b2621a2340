"""Every route of every service needs a credential whose role holds the route's permission (shared/auth/roles.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from services.registry import SERVICES
from shared.auth import ROLES, Role
from shared.auth.roles import allows
from shared.events import utcnow
from tests.helpers import credential
from tests.shared.auth.apps import JWT_SECRET, OPEN_PATHS, RouteUnderTest, routes_of, service_app

SCOPES: dict[Role, dict[str, list[str]]] = {
    "unit": {"units": ["DEPT-UM"]},
    "grid": {"grids": ["11019900200101"]},
    "town": {"streets": ["110199002"]},
}


def _refusal_shape(answer: httpx.Response, route: RouteUnderTest) -> bool:
    """A refusal is problem+json, or the GeoReport errors list on the Open311 routes."""
    if route.path.startswith("/open311/"):
        return isinstance(answer.json(), list) and answer.json()[0]["code"] == answer.status_code
    return answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("service", list(SERVICES))
async def test_every_route_but_health_and_docs_has_a_permission(service: str, tmp_path: Path) -> None:
    async with service_app(service, tmp_path) as (app, _):
        routes = routes_of(app)
    unguarded = [f"{r.method} {r.path}" for r in routes if not r.permissions and r.path not in OPEN_PATHS]
    assert unguarded == []
    assert sum(1 for r in routes if r.permissions) >= 10


@pytest.mark.parametrize("service", list(SERVICES))
async def test_each_role_reaches_exactly_the_routes_its_permissions_name(service: str, tmp_path: Path) -> None:
    async with service_app(service, tmp_path) as (app, client):
        headers = {}
        for role in ROLES:
            scope = SCOPES.get(role, {})
            headers[role] = await credential(
                app, role, units=scope.get("units"), grids=scope.get("grids"), streets=scope.get("streets")
            )
        mismatches: list[str] = []
        for route in [r for r in routes_of(app) if r.permissions]:
            for role in ROLES:
                answer = await client.request(route.method, route.url(), headers=headers[role])
                allowed = all(allows(role, p) for p in route.permissions)
                if allowed and answer.status_code in (401, 403, 429):
                    mismatches.append(f"{role} refused {answer.status_code} on {route.method} {route.path}")
                if not allowed and (answer.status_code != 403 or not _refusal_shape(answer, route)):
                    mismatches.append(f"{role} got {answer.status_code} on {route.method} {route.path}, not 403")
    assert mismatches == []


@pytest.mark.parametrize("service", list(SERVICES))
async def test_no_expired_revoked_or_badly_signed_credential_gets_in(service: str, tmp_path: Path) -> None:
    async with service_app(service, tmp_path) as (app, client):
        guarded = [r for r in routes_of(app) if r.permissions]
        expired = await credential(app, "admin", expires_at=utcnow() - timedelta(seconds=1))
        revoked = await credential(app, "admin")
        await app.state.auth.store.revoke(revoked["Authorization"].split("_")[1])
        claims = {"sub": "someone", "role": "admin", "iss": "jiesu", "aud": "jiesu"}
        later = utcnow() + timedelta(minutes=5)
        forged = jwt.encode(claims | {"exp": later}, "not-the-secret-of-this-deployment-at-all", algorithm="HS256")
        stale = jwt.encode(claims | {"exp": utcnow() - timedelta(minutes=1)}, JWT_SECRET, algorithm="HS256")
        good = jwt.encode(claims | {"exp": later}, JWT_SECRET, algorithm="HS256")
        refused: list[str] = []
        for route in guarded:
            attempts = {
                "none": {},
                "expired key": expired,
                "revoked key": revoked,
                "forged token": {"Authorization": f"Bearer {forged}"},
                "expired token": {"Authorization": f"Bearer {stale}"},
                "not bearer": {"Authorization": "Basic YWRtaW46YWRtaW4="},
            }
            for name, sent in attempts.items():
                answer = await client.request(route.method, route.url(), headers=sent)
                if answer.status_code != 401 or not answer.headers["WWW-Authenticate"].startswith("Bearer"):
                    refused.append(f"{name}: {answer.status_code} on {route.method} {route.path}")
                elif not _refusal_shape(answer, route):
                    refused.append(f"{name}: 401 on {route.method} {route.path} in another format")
            signed = await client.request(route.method, route.url(), headers={"Authorization": f"Bearer {good}"})
            if signed.status_code in (401, 403):
                refused.append(f"a well-signed admin token got {signed.status_code} on {route.method} {route.path}")
    assert refused == []


async def test_a_refusal_names_no_secret(tmp_path: Path) -> None:
    async with service_app("dispatch", tmp_path) as (app, client):
        key = (await credential(app, "analyst"))["Authorization"].removeprefix("Bearer ")
        forbidden = await client.get("/v1/cases", headers={"Authorization": f"Bearer {key}"})
        wrong = await client.get("/v1/cases", headers={"Authorization": f"Bearer {key}x"})
    assert forbidden.status_code == 403 and wrong.status_code == 401
    secret = key.split("_", 2)[2]
    for answer in (forbidden, wrong):
        assert secret not in answer.text and secret not in str(answer.headers)
