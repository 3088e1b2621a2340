"""RFC 9457 problem details: error types and their FastAPI handlers."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any

from asyncpg.exceptions import InterfaceError, PostgresError  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import RouteContext, iter_route_contexts
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import database_unreachable

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("jiesu.problems")


class Problem(Exception):
    """A domain error that the API answers with a problem document."""

    status: int = 400
    type_slug: str = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra
        self.headers: dict[str, str] = {}


class NotFound(Problem):
    status = 404
    type_slug = "not-found"


class Conflict(Problem):
    """The resource's current state forbids the request (409)."""

    status = 409
    type_slug = "conflict"


class Forbidden(Problem):
    status = 403
    type_slug = "forbidden"


class Unauthorized(Problem):
    """No credential, or one that is not valid (401, with WWW-Authenticate)."""

    status = 401
    type_slug = "unauthorized"


class TooManyRequests(Problem):
    """The credential's rate limit is spent (429, with Retry-After)."""

    status = 429
    type_slug = "too-many-requests"


def problem_response(
    *, status: int, slug: str, detail: str, instance: str, extra: dict[str, Any] | None = None
) -> JSONResponse:
    """Build an ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": f"https://jiesu.dev/problems/{slug}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field_path(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _submitted_values(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _submitted_values(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _submitted_values(item)]
    return [str(value)] if isinstance(value, str | int | float) and not isinstance(value, bool) else []


def _without_input(err: Any) -> str:
    """The error's message without any echo of the submitted value, which may be personal data.

    The problem never carries pydantic's ``input``; a message that quotes it (a custom validator's) is cut too.
    """
    message = str(err.get("msg", ""))
    for value in sorted(_submitted_values(err.get("input")), key=len, reverse=True):
        if len(value) >= 4 and value in message:
            message = message.replace(value, "(the value sent)")
    return message


def _error(err: Any) -> dict[str, str]:
    if err.get("type") == "json_invalid":
        # The body is not JSON: its location is a character position, not a field.
        at = next((f" at character {p}" for p in err.get("loc", ())[1:] if isinstance(p, int)), "")
        reason = str((err.get("ctx") or {}).get("error", "")).split(": line ")[0]
        return {
            "field": "body",
            "message": f"not valid JSON{at}" + (f": {reason}" if reason else ""),
            "code": "json_invalid",
        }
    return {"field": _field_path(err.get("loc", ())), "message": _without_input(err), "code": err.get("type", "")}


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_error(err) for err in exc.errors()]
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return problem_response(
        status=422,
        slug="validation",
        detail=f"invalid request: {fields}",
        instance=request.url.path,
        extra={"errors": errors},
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    extra: dict[str, Any] = dict(exc.extra)
    if exc.field:
        extra["errors"] = [{"field": exc.field, "message": exc.detail, "code": exc.type_slug}]
    response = problem_response(
        status=exc.status, slug=exc.type_slug, detail=exc.detail, instance=request.url.path, extra=extra
    )
    response.headers.update(exc.headers)
    return response


def _path_matches(route: RouteContext, path: str) -> bool:
    pattern = getattr(route, "path_regex", None)
    return pattern is not None and pattern.match(path) is not None


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    response = problem_response(status=exc.status_code, slug=slug, detail=str(exc.detail), instance=request.url.path)
    response.headers.update(exc.headers or {})  # e.g. Allow on 405
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; a path may have several routes.
        matching = [
            route
            for route in iter_route_contexts(request.app.router.routes)
            if route.methods and _path_matches(route, request.url.path)
        ]
        # A fixed path (/v1/reports/batch) is its own resource, not a value of a template (/v1/reports/{id}).
        fixed = [route for route in matching if route.path == request.url.path]
        allowed = {method for route in fixed or matching for method in route.methods or ()}
        if allowed:
            response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


async def _on_database_error(request: Request, exc: Exception) -> Response:
    if not database_unreachable(exc):
        log.error("unexpected database error on %s", request.url.path, exc_info=exc)
        return problem_response(
            status=500, slug="internal", detail="internal error; nothing was changed", instance=request.url.path
        )
    # Usually the transaction never began or never committed. But when the connection dies during COMMIT, the
    # commit may be durable while its acknowledgement is lost: the answer cannot promise that nothing was stored.
    response = problem_response(
        status=503,
        slug="database-unavailable",
        detail=(
            "the database is unreachable right now; try again shortly. If the outage cut off the commit, the change"
            " may have been stored: send it again with the same key (a report's source and external_id) and it is"
            " answered as a replay, or read it back first"
        ),
        instance=request.url.path,
    )
    response.headers["Retry-After"] = "5"
    return response


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of the app as RFC 9457 problem+json."""
    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        RequestValidationError: _on_validation,
        Problem: _on_problem,
        StarletteHTTPException: _on_http,
        DBAPIError: _on_database_error,
        ConnectionError: _on_database_error,
        TimeoutError: _on_database_error,
        PostgresError: _on_database_error,
        InterfaceError: _on_database_error,
    }
    for exc_type, handler in handlers.items():
        app.add_exception_handler(exc_type, handler)


class BodySizeLimit:
    """Refuse request bodies over a limit with 413 before the app reads them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.max_bytes)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send, limit)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            status=413,
            slug="body-too-large",
            detail=f"request body exceeds {limit} bytes",
            instance=scope.get("path", ""),
            extra={"errors": [{"field": "body", "message": "too large", "code": "too_large"}]},
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REFUSED = SimpleNamespace(path="(overloaded)")


class InFlightLimit:
    """Answer a write 503 at once, with Retry-After, while ``limit`` writes are already being handled.

    Past what the machine can carry, requests would otherwise queue behind one another until clients time out (at
    1,000 reports/s offered, about twice what the machine carries, intake's answers took 15-30 s), and the work for
    a client that gave up is still done. Refused at the door, nothing is read or stored and the client knows at once
    to come back. Reads (health, status, lists) are never refused.
    """

    def __init__(self, app: ASGIApp, *, limit: int, service: str) -> None:
        self.app = app
        self.limit = limit
        self.service = service
        self.in_flight = 0
        self.refused = 0  # since the last log line
        self._logged_at = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limit or scope.get("method") not in _WRITES:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._refuse(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.refused += 1
        scope["route"] = _REFUSED  # the request metrics' route label: no route was matched, the door refused it
        now = time.monotonic()
        if now - self._logged_at >= 10.0:
            log.warning(
                "%s refused %d writes (503, overloaded) since its last such line: %d in flight, the limit; if this "
                "persists, add instances or raise JIESU_%s_MAX_IN_FLIGHT",
                self.service,
                self.refused,
                self.in_flight,
                self.service.upper(),
            )
            self.refused, self._logged_at = 0, now
        response = problem_response(
            status=503,
            slug="overloaded",
            detail=(
                f"{self.limit} writes are being handled already; nothing was stored: send it again after Retry-After"
            ),
            instance=scope.get("path", ""),
        )
        response.headers["Retry-After"] = "1"
        await response(scope, receive, send)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` names each field at fault",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message", "code"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "code": {"type": "string"}},
            },
        },
    },
}
_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_GUARDED = {
    "401": "no credential, or one unknown, expired, revoked or badly signed (WWW-Authenticate says how to send one)",
    "403": "the credential's role or scope does not allow this",
    "429": "the credential's rate limit is spent (Retry-After says when to try again)",
}


def document_problems(app: FastAPI, *, own_errors: tuple[str, ...] = ("/open311/",)) -> None:
    """Make the OpenAPI document say what is sent: problem+json for 422 and every refusal, 401/403/429 and 404.

    Paths starting with one of ``own_errors`` answer in a format of their own and are left as they are.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for path, item in document.get("paths", {}).items():
            if path.startswith(own_errors):
                continue
            for operation in item.values():
                _document_operation(path, operation)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _document_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "422" in responses:
        responses["422"] = {"description": "the request is invalid; `errors` names each field", "content": {}}
    if operation.get("security"):
        for status, why in _GUARDED.items():
            responses.setdefault(status, {"description": why})
    if "{" in path:
        responses.setdefault("404", {"description": "not found"})
    if operation.get("security"):
        responses.setdefault("400", {"description": "a request the service cannot take as it stands"})
    if "requestBody" in operation:
        responses.setdefault("413", {"description": "the body is larger than the service accepts"})
    unavailable = "the service's database is unreachable; try again after Retry-After"
    if "requestBody" in operation:  # a write: also refused while the process handles its limit of writes
        unavailable = "the service's database is unreachable, or it is overloaded; try again after Retry-After"
    responses.setdefault("503", {"description": unavailable})
    for status, response in responses.items():
        if status[0] in "45" and not response.get("content") and status != "405":
            response["content"] = dict(_PROBLEM_CONTENT)
