"""Signed tokens (JWT): checked with the configured secret or public key; issued by ``POST /oauth/token``."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import jwt

from shared.auth.principal import Principal
from shared.auth.roles import ROLES
from shared.auth.settings import AuthSettings
from shared.auth.store import CredentialRefused, KeyRecord
from shared.events import utcnow

# A token from the token endpoint names the API key it was issued for, so revoking the key ends it too.
KEY_CLAIM = "key"


def _strings(value: object, claim: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CredentialRefused(f"claim {claim} is not a list of strings")
    return tuple(value)


def verify(token: str, settings: AuthSettings) -> tuple[Principal, str | None]:
    """The caller a token names and the API key it was issued for, or CredentialRefused."""
    keys: list[tuple[str, Any]] = []
    if settings.jwt_secret and "HS256" in settings.jwt_algorithms:
        keys.append(("HS256", settings.jwt_secret))
    if settings.jwt_public_key:
        keys.extend((alg, settings.jwt_public_key) for alg in settings.jwt_algorithms if alg != "HS256")
    if not keys:
        raise CredentialRefused("signed tokens are not configured")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise CredentialRefused("malformed token") from exc
    chosen = [key for alg, key in keys if alg == header.get("alg")]
    if not chosen:
        raise CredentialRefused("token algorithm not accepted")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            chosen[0],
            algorithms=[str(header["alg"])],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise CredentialRefused("expired token") from exc
    except jwt.PyJWTError as exc:
        raise CredentialRefused("invalid token") from exc
    role = claims.get("role")
    if role not in ROLES:
        raise CredentialRefused("token names no known role")
    principal = Principal(
        credential_id=str(claims["sub"])[:32],
        role=role,
        units=_strings(claims.get("units"), "units"),
        grids=_strings(claims.get("grids"), "grids"),
        streets=_strings(claims.get("streets"), "streets"),
        via="jwt",
    )
    key = claims.get(KEY_CLAIM)
    return principal, key if isinstance(key, str) else None


def issue(record: KeyRecord, settings: AuthSettings) -> tuple[str, int]:
    """An HS256 token for an API key's role and scope, and its lifetime in seconds."""
    if not settings.jwt_secret:
        raise ValueError("issuing tokens needs JIESU_AUTH_JWT_SECRET")
    lifetime = settings.token_minutes * 60
    now = utcnow()
    if record.expires_at is not None:
        lifetime = max(1, min(lifetime, int((record.expires_at - now).total_seconds())))
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": record.id,
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
        "jti": uuid.uuid4().hex,
        "role": record.role,
        "units": list(record.units),
        "grids": list(record.grids),
        "streets": list(record.streets),
        KEY_CLAIM: record.id,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256"), lifetime


def sign(claims: dict[str, Any], settings: AuthSettings) -> str:
    """An HS256 token of the given claims with issuer, audience and a lifetime filled in (tools and tests)."""
    if not settings.jwt_secret:
        raise ValueError("signing tokens needs JIESU_AUTH_JWT_SECRET")
    now = utcnow()
    full = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + timedelta(minutes=settings.token_minutes),
    } | claims
    return jwt.encode(full, settings.jwt_secret, algorithm="HS256")
