"""Liveness and readiness endpoints every service exposes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shared.runtime import ServiceRuntime


def health_router(runtime_of: Callable[[Request], ServiceRuntime]) -> APIRouter:
    """``/healthz`` (the process lives) and ``/readyz`` (database up and migrated, background work running)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        runtime = runtime_of(request)
        checks: dict[str, Any] = {
            "database": await runtime.database_ready(),
            "background": runtime.background_healthy(),
        }
        if checks["database"]:
            # Until every database holds this release's schema (its migration Job may still be running) the
            # service takes no traffic: its queries would fail on tables that are not there yet.
            problems = [problem for check in runtime.schema_checks if (problem := await check.problem())]
            checks["schema"] = "; ".join(problems) if problems else "ok"
        degraded = False
        if runtime.relay is not None and checks["database"]:
            checks["outbox_backlog"] = await runtime.relay.backlog()
            if runtime.relay.last_error is not None:
                # Still ready: reports are accepted and wait in the outbox until the bus is back.
                degraded = True
                checks["bus"] = f"cannot publish: {runtime.relay.last_error}"
        ready = bool(checks["database"] and checks["background"] and checks.get("schema") == "ok")
        status = "unavailable" if not ready else "degraded" if degraded else "ready"
        return JSONResponse(
            {"status": status, "service": runtime.name, "checks": checks}, status_code=200 if ready else 503
        )

    return router
