"""The route class of the GeoReport routes: refusals as the spec's errors list, 405 with the methods allowed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.intake.open311.render import Open311Error, errors, format_of


def _refusal(exc: RequestValidationError) -> Open311Error:
    problems = list(exc.errors())
    if any(tuple(p.get("loc", ())) == ("path", "response_format") for p in problems):
        return Open311Error(404, "unknown format: end the path with .json or .xml")
    return Open311Error(400, *(f"{p['loc'][-1] if p.get('loc') else 'request'}: {p.get('msg', '')}" for p in problems))


class Open311Route(APIRoute):
    """A GeoReport route: every refusal is ``errors`` in the format the path asks for, with the spec's status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            fmt = format_of(request.path_params.get("response_format"))
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return errors(fmt, _refusal(exc))
            except Open311Error as exc:
                return errors(fmt, exc)

        return handle

    # Every method the route's path answers, set by ``link_methods`` once the router has all its routes.
    allowed: tuple[str, ...] = ()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            allowed = self.allowed or tuple(sorted(self.methods))
            refusal = Open311Error(405, f"{scope['method']} is not allowed here", headers={"Allow": ", ".join(allowed)})
            response = errors(format_of(scope.get("path_params", {}).get("response_format")), refusal)
            await response(scope, receive, send)
            return
        await super().handle(scope, receive, send)


def link_methods(router: APIRouter) -> None:
    """Tell each route all the methods of its path (GET and POST share requests.json), for 405's Allow."""
    by_path: dict[str, set[str]] = defaultdict(set)
    for route in router.routes:
        if isinstance(route, Route):
            by_path[route.path] |= route.methods or set()
    for route in router.routes:
        if isinstance(route, Open311Route):
            route.allowed = tuple(sorted(by_path[route.path]))
