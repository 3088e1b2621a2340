"""One service app on its own credential store (with a JWT secret), and its routes as the auth tests see them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from services.registry import SERVICES
from shared.auth import AuthSettings, Permission, permission_of
from shared.migrate import upgrade_async
from tests.helpers import running

JWT_SECRET = "a-test-secret-of-at-least-thirty-two-chars"
# Open without a credential: health, metrics, the OpenAPI document and its viewers, and the token exchange itself.
OPEN_PATHS = {
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/oauth/token",
}


@dataclass(frozen=True)
class RouteUnderTest:
    """One method of one route and the permissions its guards check."""

    method: str
    path: str
    permissions: frozenset[Permission]

    def url(self) -> str:
        """The path with each parameter filled (formats as json)."""
        filled = self.path.replace("{response_format}", "json")
        return re.sub(r"\{[^}]+\}", "x-1", filled)


def _guards(dependant: Dependant) -> Iterator[Permission]:
    for sub in dependant.dependencies:
        found = permission_of(sub.call)
        if found is not None:
            yield found
        yield from _guards(sub)


def routes_of(app: FastAPI) -> list[RouteUnderTest]:
    """Every method of every route the app serves, with the permissions checked on it."""
    found: list[RouteUnderTest] = []
    for route in iter_route_contexts(app.routes):
        path = route.path
        assert path is not None
        dependant = getattr(route, "dependant", None)
        permissions = frozenset(_guards(dependant)) if dependant is not None else frozenset()
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append(RouteUnderTest(method=method, path=path, permissions=permissions))
    return found


def auth_settings(folder: Path, **overrides: object) -> AuthSettings:
    """A credential store in a folder, accepting HS256 tokens signed with the test secret."""
    values: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{folder / 'auth.db'}",
        "jwt_secret": JWT_SECRET,
    }
    return AuthSettings(**(values | overrides))  # type: ignore[arg-type]


@asynccontextmanager
async def service_app(
    service: str, folder: Path, **auth_overrides: object
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A service on SQLite in a folder, running, with a client that carries no credential."""
    spec = SERVICES[service]
    url = f"sqlite+aiosqlite:///{folder / f'{service}.db'}"
    await upgrade_async(script_location=spec.migrations, database_url=url)
    settings = spec.make_settings(
        database_url=url, embedded_bus_url=f"sqlite+aiosqlite:///{folder / 'bus.db'}", consumers=False
    )
    app = spec.create_app(settings, auth=auth_settings(folder, **auth_overrides))
    async with running(app, role=None) as client:
        yield app, client
