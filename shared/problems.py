"""RFC 9457 problem details: error types and their FastAPI handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """A domain error that the API answers with a problem document."""

    status: int = 400
    type_slug: str = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


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


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_path(err.get("loc", ())), "message": err.get("msg", ""), "code": err.get("type", "")}
        for err in exc.errors()
    ]
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
    return problem_response(
        status=exc.status, slug=exc.type_slug, detail=exc.detail, instance=request.url.path, extra=extra
    )


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    response = problem_response(status=exc.status_code, slug=slug, detail=str(exc.detail), instance=request.url.path)
    response.headers.update(exc.headers or {})  # e.g. Allow on 405
    return response


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of the app as RFC 9457 problem+json."""
    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        RequestValidationError: _on_validation,
        Problem: _on_problem,
        StarletteHTTPException: _on_http,
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
