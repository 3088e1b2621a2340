"""What every service's FastAPI app has: runtime in the lifespan, problem+json errors, health, size limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import MIGRATIONS as AUTH_MIGRATIONS
from shared.auth import AuthRuntime, AuthSettings, document_security
from shared.bus.base import Bus
from shared.consumer import ConsumerSpec
from shared.health import health_router
from shared.migrate import SchemaCheck, upgrade_async
from shared.observability import install_metrics
from shared.outbox import MessagingTables
from shared.problems import BodySizeLimit, InFlightLimit, document_problems, install_problem_handlers
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings


def runtime_of(request: Request) -> ServiceRuntime:
    """The running service behind a request."""
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for one request; the route opens the transaction."""
    async with runtime_of(request).sessions() as session:
        yield session


def build_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    tables: MessagingTables,
    consumer_specs: Callable[[str], Sequence[ConsumerSpec]],
    routers: Sequence[APIRouter],
    migrations: Path,
    bus: Bus | None = None,
    migrate_on_start: bool = False,
    on_start: Callable[[FastAPI, ServiceRuntime], None] | None = None,
    background: Sequence[Callable[[ServiceRuntime], Coroutine[Any, Any, None]]] = (),
    body_limits: dict[str, int] | None = None,
    auth: AuthSettings | None = None,
) -> FastAPI:
    """Assemble one service's app; nothing starts until the lifespan runs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Read at start, not at build: a test may point the app at its own credential store in between.
        auth_settings: AuthSettings = app.state.auth_settings
        if migrate_on_start:
            await upgrade_async(script_location=migrations, database_url=settings.database_url)
            await upgrade_async(script_location=AUTH_MIGRATIONS, database_url=auth_settings.database_url)
        app.state.auth = AuthRuntime(auth_settings, service=name)
        runtime = ServiceRuntime(
            name=name,
            settings=settings,
            tables=tables,
            consumer_specs=list(consumer_specs(settings.topic_namespace)),
            bus=bus,
            background=background,
        )
        await runtime.start()
        runtime.schema_checks = [
            SchemaCheck(runtime.engine, migrations, command=f"jiesu migrate {name}"),
            SchemaCheck(app.state.auth.engine, AUTH_MIGRATIONS, command="jiesu migrate auth"),
        ]
        app.state.runtime = runtime
        if on_start is not None:
            on_start(app, runtime)
        try:
            yield
        finally:
            await runtime.close()
            await app.state.auth.close()

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.state.auth_settings = auth or AuthSettings()
    install_problem_handlers(app)
    document_security(app)  # first: the problems' document reads which operations are guarded
    document_problems(app)
    # Inside the request metrics (a refused write counts as a 503 there), outside everything else.
    app.add_middleware(InFlightLimit, limit=settings.max_in_flight, service=name)
    install_metrics(app, service=name)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, overrides=body_limits)
    app.include_router(health_router(runtime_of))
    for router in routers:
        app.include_router(router)
    return app
