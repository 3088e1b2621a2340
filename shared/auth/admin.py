"""Credential management, the audit log and the OAuth2 token endpoint (served by dispatch)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse

from shared.auth import tokens
from shared.auth.audit import AuditQuery
from shared.auth.guard import auth_of, require
from shared.auth.principal import Principal
from shared.auth.roles import SCOPED
from shared.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, AuditPage, AuditRead, TokenAnswer
from shared.auth.store import CredentialRefused
from shared.problems import NotFound, Problem
from shared.routing import JSONRoute
from shared.timefields import IsoDateTime

router = APIRouter(tags=["credentials"], route_class=JSONRoute)


class Invalid(Problem):
    """A well-formed body the store cannot take (422)."""

    status = 422
    type_slug = "validation"


Manager = Annotated[Principal, Depends(require("credentials:manage"))]
FORM_TYPE = "application/x-www-form-urlencoded"


@router.post("/v1/api-keys", status_code=201, response_model=ApiKeyCreated)
async def create_key(body: ApiKeyCreate, request: Request, _admin: Manager) -> ApiKeyCreated:
    """A new API key; the answer holds the key itself, shown only this once."""
    needed = SCOPED.get(body.role)
    if needed is not None and not getattr(body, needed):
        raise Invalid(f"a {body.role} key needs at least one code in {needed}", field=needed)
    record, key = await auth_of(request).store.create(
        role=body.role,
        name=body.name,
        units=body.units,
        grids=body.grids,
        streets=body.streets,
        expires_at=body.expires_at,
        rate_per_second=body.rate_per_second,
    )
    return ApiKeyCreated(**ApiKeyRead.of(record).model_dump(), key=key)


@router.get("/v1/api-keys", response_model=list[ApiKeyRead])
async def list_keys(request: Request, _admin: Manager) -> list[ApiKeyRead]:
    """Every key, newest first, without secrets."""
    return [ApiKeyRead.of(record) for record in await auth_of(request).store.all()]


@router.delete("/v1/api-keys/{key_id}", response_model=ApiKeyRead)
async def revoke_key(key_id: str, request: Request, _admin: Manager) -> ApiKeyRead:
    """Revoke a key: refused from the next request here, and within the cache time elsewhere."""
    record = await auth_of(request).store.revoke(key_id)
    if record is None:
        raise NotFound(f"no API key {key_id}", field="key_id")
    return ApiKeyRead.of(record)


@router.get("/v1/audit", response_model=AuditPage)
async def read_audit(
    request: Request,
    _admin: Annotated[Principal, Depends(require("audit:read"))],
    credential_id: Annotated[str | None, Query(max_length=32)] = None,
    outcome: Annotated[str | None, Query(pattern="^(denied|allowed)$")] = None,
    since: Annotated[IsoDateTime | None, Query(description="only rows at or after this time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditPage:
    """Refusals and reads of personal data, newest first."""
    query = AuditQuery(credential_id=credential_id, outcome=outcome, since=since, limit=limit, offset=offset)
    rows, more = await auth_of(request).audit.read(query)
    return AuditPage(items=[AuditRead.model_validate(r) for r in rows], limit=limit, offset=offset, more=more)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="jiesu"'} if status == 401 else {}
    headers["Cache-Control"] = "no-store"
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return client_id, secret


OAUTH_ERROR: dict[str, Any] = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
        }
    }
}
TOKEN_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "client_id": {"type": "string", "description": "the API key's id"},
        "client_secret": {"type": "string", "description": "the API key itself"},
    },
}


@router.post(
    "/oauth/token",
    response_model=TokenAnswer,
    responses={
        400: {"description": "invalid_request or unsupported_grant_type (RFC 6749 §5.2)", "content": OAUTH_ERROR},
        401: {"description": "invalid_client: unknown, expired or revoked key", "content": OAUTH_ERROR},
    },
    openapi_extra={"requestBody": {"required": True, "content": {FORM_TYPE: {"schema": TOKEN_FORM}}}},
)
async def issue_token(request: Request) -> JSONResponse:
    """OAuth2 client credentials: client_id = the key id, client_secret = the API key; answers a signed token."""
    auth = auth_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        return _oauth_error(400, "invalid_request", f"send the form as {FORM_TYPE}")
    try:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True, max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        return _oauth_error(400, "invalid_request", "the form cannot be read")
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    if not auth.settings.jwt_secret:
        return _oauth_error(400, "invalid_request", "this deployment issues no tokens (no JWT secret configured)")
    client_id, secret = _basic(request) or (form.get("client_id", ""), form.get("client_secret", ""))
    try:
        record = await auth.store.verify(secret)
        if record.id != client_id:
            raise CredentialRefused("client_id is not the key's id")
    except CredentialRefused as exc:
        await auth.record_refusal(request, principal=None, action="oauth:token", status=401, reason=str(exc))
        return _oauth_error(401, "invalid_client", "unknown, expired or revoked client")
    token, lifetime = tokens.issue(record, auth.settings)
    answer = TokenAnswer(access_token=token, expires_in=lifetime)
    return JSONResponse(answer.model_dump(), headers={"Cache-Control": "no-store"})
