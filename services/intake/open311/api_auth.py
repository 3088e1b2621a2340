"""Credentials on the GeoReport routes: the shared store's keys, also as ``api_key``; refusals as ``errors``."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from services.intake.open311.forms import FORM_TYPE
from services.intake.open311.render import Open311Error
from shared.auth import Permission, Principal, require


def open311_refusal(status: int, detail: str, headers: dict[str, str]) -> Exception:
    """A refusal in the spec's errors list, worded as GeoReport clients know it for a missing or bad key."""
    if status == 401:
        detail = "api_key is invalid" if "error=" in headers.get("WWW-Authenticate", "") else "api_key was not provided"
    return Open311Error(status, detail, headers=headers)


async def api_key_of(request: Request) -> str | None:
    """The ``api_key`` of the form (POST) or the query, as GeoReport clients send it."""
    if request.method == "POST" and request.headers.get("content-type", "").split(";")[0].strip() == FORM_TYPE:
        try:
            form = dict(parse_qsl((await request.body()).decode("utf-8"), max_num_fields=100))
        except (UnicodeDecodeError, ValueError):
            form = {}  # the route itself answers the unreadable form
        if form.get("api_key"):
            return form["api_key"]
    return request.query_params.get("api_key") or None


def open311_require(permission: Permission) -> Any:
    """The ``require`` guard of a GeoReport route."""
    return require(permission, refuse=open311_refusal, key_from=api_key_of)


Reader = Annotated[Principal, Depends(open311_require("open311:read"))]
Poster = Annotated[Principal, Depends(open311_require("open311:post"))]
