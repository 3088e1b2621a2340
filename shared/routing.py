"""API routes whose JSON request bodies are parsed by orjson (``shared.jsontext``) instead of the standard library."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from shared import jsontext


class JSONRequest(Request):
    """A request whose JSON body is parsed once, strictly (no NaN or Infinity), by orjson."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = jsontext.loads(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """The route class of every router that takes JSON bodies: a report parses in about a quarter of the time.

    Invalid JSON is still FastAPI's 422 ``json_invalid`` (orjson's error is a :class:`json.JSONDecodeError`).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(JSONRequest(request.scope, request.receive))

        return handle
