"""Who is calling and may they: the per-process auth runtime and the ``require(permission)`` dependency."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, Protocol

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPBearer

from shared.auth import tokens
from shared.auth.audit import AuditLog
from shared.auth.limits import RateLimiter
from shared.auth.principal import Principal
from shared.auth.roles import Permission
from shared.auth.settings import AuthSettings
from shared.auth.store import KEY_PREFIX, CredentialRefused, CredentialStore
from shared.db import create_engine
from shared.problems import Forbidden, Problem, TooManyRequests, Unauthorized

log = logging.getLogger("jiesu.auth")
REALM = 'Bearer realm="jiesu"'
PERMISSION_ATTRIBUTE = "__jiesu_permission__"
# Declared on every guarded route's operation so the OpenAPI document (and /docs) shows how to send a credential
# (``document_security``).
bearer = HTTPBearer(
    scheme_name="bearer",
    auto_error=False,
    description="an API key (jsk_…) or a signed token (JWT, e.g. from POST /oauth/token)",
)


class Refuse(Protocol):
    """Builds the exception a route answers a refusal with (problem+json, or Open311's errors list)."""

    def __call__(self, status: int, detail: str, headers: dict[str, str]) -> Exception: ...


def problem_refusal(status: int, detail: str, headers: dict[str, str]) -> Exception:
    """A refusal as RFC 9457 problem+json."""
    kinds: dict[int, type[Unauthorized | Forbidden | TooManyRequests]] = {
        401: Unauthorized,
        403: Forbidden,
        429: TooManyRequests,
    }
    problem = kinds[status](detail)
    problem.headers = headers
    return problem


KeyFrom = Callable[[Request], Awaitable[str | None]]


class NoCredential(Exception):
    """The request carries no credential at all."""


class AuthRuntime:
    """The credential store, audit log and rate limiter of one process."""

    def __init__(self, settings: AuthSettings, *, service: str) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url, pool_size=5)
        self.store = CredentialStore(self.engine, cache_seconds=settings.cache_seconds)
        self.audit = AuditLog(self.store.sessions, service=service)
        self.limiter = RateLimiter(burst_seconds=settings.rate_burst_seconds)

    async def close(self) -> None:
        """Release the database connections."""
        await self.engine.dispose()

    async def identify(self, presented: str) -> tuple[Principal, float]:
        """The caller behind an API key or a signed token, and its rate limit; CredentialRefused otherwise."""
        if presented.startswith(f"{KEY_PREFIX}_"):
            record = await self.store.verify(presented)
            return record.principal(), self.settings.rate_of(record.role, record.rate_per_second)
        principal, key_id = tokens.verify(presented, self.settings)
        override = None
        if key_id is not None:
            issuer = await self.store.find(key_id)
            if issuer is None or issuer.revoked_at is not None:
                raise CredentialRefused("token of a revoked or unknown api key")
            override = issuer.rate_per_second
        return principal, self.settings.rate_of(principal.role, override)

    async def record_refusal(
        self, request: Request, *, principal: Principal | None, action: str, status: int, reason: str
    ) -> None:
        """Audit a refusal; a failing audit store is logged and the refusal stands."""
        try:
            await self.audit.record(
                principal=principal,
                action=action,
                method=request.method,
                path=request.url.path,
                outcome="denied",
                status=status,
                detail={"reason": reason},
            )
        except Exception:
            log.exception("could not audit a refusal of %s %s", request.method, request.url.path)


def auth_of(request: Request) -> AuthRuntime:
    """The auth runtime of the app serving a request."""
    runtime: AuthRuntime = request.app.state.auth
    return runtime


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise CredentialRefused("authorization header is not a bearer credential")
    return value.strip()


async def authorize(
    request: Request, permission: Permission, *, refuse: Refuse = problem_refusal, key_from: KeyFrom | None = None
) -> Principal:
    """Authenticate the caller, spend from its rate limit and check the permission; audit every refusal."""
    auth = auth_of(request)
    try:
        presented = _presented(request)
        if presented is None and key_from is not None:
            presented = await key_from(request)
        if presented is None:
            raise NoCredential
        principal, rate = await auth.identify(presented)
    except NoCredential:
        await auth.record_refusal(request, principal=None, action=permission, status=401, reason="no credential")
        raise refuse(
            401, "credentials are required: send Authorization: Bearer <API key or token>", {"WWW-Authenticate": REALM}
        ) from None
    except CredentialRefused as exc:
        await auth.record_refusal(request, principal=None, action=permission, status=401, reason=str(exc))
        raise refuse(
            401,
            "the credential is not valid: unknown, expired, revoked or badly signed",
            {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        ) from None
    wait = auth.limiter.take(principal.credential_id, rate=rate)
    if wait > 0:
        await auth.record_refusal(request, principal=principal, action=permission, status=429, reason="rate limit")
        retry = str(min(3600, max(1, math.ceil(wait))))
        raise refuse(429, f"this credential may make {rate:g} requests a second; retry later", {"Retry-After": retry})
    if not principal.can(permission):
        await auth.record_refusal(request, principal=principal, action=permission, status=403, reason="role")
        raise refuse(403, f"the {principal.role} role may not do this ({permission})", {})
    request.state.principal = principal
    return principal


def require(
    permission: Permission, *, refuse: Refuse = problem_refusal, key_from: KeyFrom | None = None
) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller, once it is known to hold ``permission``."""

    async def guard(request: Request) -> Principal:
        return await authorize(request, permission, refuse=refuse, key_from=key_from)

    setattr(guard, PERMISSION_ATTRIBUTE, permission)
    guard.__name__ = f"require_{permission.replace(':', '_')}"
    return guard


def permission_of(dependency: Any) -> Permission | None:
    """The permission a dependency checks, if it is a ``require`` guard."""
    found: Permission | None = getattr(dependency, PERMISSION_ATTRIBUTE, None)
    return found


def document_security(app: FastAPI) -> None:
    """Say in the OpenAPI document that every operation a ``require`` guard protects takes the bearer credential.

    The guard reads the Authorization header itself. Declaring the scheme as a ``Security(bearer)`` parameter of the
    guard would say the same in the document, but FastAPI would also resolve that parameter (and its OAuth scopes)
    on every request: 13-21 us of a guarded request's ~160 us in-process, for nothing the guard uses.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        guarded = {
            (route.path_format, method.lower())
            for route in iter_route_contexts(app.routes)  # included routers' routes too, as the document has them
            if isinstance(route.original_route, APIRoute) and _guarded(route.dependant)
            for method in route.methods or ()
        }
        for path, item in document.get("paths", {}).items():
            for method, operation in item.items():
                if (path, method) in guarded:
                    # First, as FastAPI put a guard's own scheme: before any the route declares itself.
                    operation["security"] = [{bearer.scheme_name: []}, *operation.get("security", [])]
        if guarded:
            schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes[bearer.scheme_name] = bearer.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _guarded(dependant: Dependant) -> bool:
    return any(permission_of(sub.call) is not None or _guarded(sub) for sub in dependant.dependencies)


async def forbid(
    request: Request,
    principal: Principal,
    *,
    action: str,
    detail: str,
    field: str | None = None,
    refuse: Refuse = problem_refusal,
) -> NoReturn:
    """Refuse an action on something outside the caller's scope (403, naming the field), audited."""
    auth = auth_of(request)
    await auth.record_refusal(request, principal=principal, action=action, status=403, reason=detail)
    refusal = refuse(403, detail, {})
    if isinstance(refusal, Problem):
        refusal.field = field
    raise refusal


async def record_access(request: Request, principal: Principal, *, action: str, detail: dict[str, Any]) -> None:
    """Audit a read of personal data; when the audit cannot be written, the read fails too."""
    await auth_of(request).audit.record(
        principal=principal,
        action=action,
        method=request.method,
        path=request.url.path,
        outcome="allowed",
        status=200,
        detail=detail,
    )
