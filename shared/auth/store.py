"""The credential store: API keys created, listed, revoked and checked; only their hashes are kept."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth.models import ApiKey
from shared.auth.principal import Principal
from shared.auth.roles import SCOPED, Role
from shared.db import session_factory
from shared.events import utcnow

KEY_PREFIX = "jsk"
# A digest nothing hashes to, compared against when the key id is unknown, so timing tells nothing.
_NO_DIGEST = "0" * 64


class CredentialRefused(Exception):
    """The presented credential is unknown, malformed, expired or revoked (the reason is for the audit only)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as the store knows it (never the secret)."""

    id: str
    name: str
    role: Role
    units: tuple[str, ...]
    grids: tuple[str, ...]
    streets: tuple[str, ...]
    secret_sha256: str
    rate_per_second: float | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def principal(self, *, via: str = "api-key") -> Principal:
        """The caller this key stands for."""
        return Principal(self.id, self.role, units=self.units, grids=self.grids, streets=self.streets, via=via)

    def usable_at(self, moment: datetime) -> bool:
        """Neither revoked nor expired at a moment."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > moment)


def _record(row: ApiKey) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        role=row.role,  # type: ignore[arg-type]  # the column only ever holds a Role
        units=tuple(row.units),
        grids=tuple(row.grids),
        streets=tuple(row.streets),
        secret_sha256=row.secret_sha256,
        rate_per_second=row.rate_per_second,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def digest(secret: str) -> str:
    """The stored form of a key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """The key id and secret of ``jsk_<id>_<secret>``, or None when it has not that shape."""
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret or len(key_id) > 32:
        return None
    return key_id, secret


def check_scope(role: Role, *, units: list[str], grids: list[str], streets: list[str]) -> None:
    """A scoped role carries its scope; ValueError naming the missing one."""
    scope = {"units": units, "grids": grids, "streets": streets}
    needed = SCOPED.get(role)
    if needed is not None and not scope[needed]:
        raise ValueError(f"a {role} credential needs at least one of {needed}")


class CredentialStore:
    """API keys in the shared credential database, with a short per-process cache of lookups."""

    def __init__(self, engine: AsyncEngine, *, cache_seconds: float) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._loading: dict[str, asyncio.Future[KeyRecord | None]] = {}

    async def create(
        self,
        *,
        role: Role,
        name: str,
        units: list[str] | None = None,
        grids: list[str] | None = None,
        streets: list[str] | None = None,
        expires_at: datetime | None = None,
        rate_per_second: float | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key and its plain text, which is shown this once and never stored."""
        units, grids, streets = list(units or []), list(grids or []), list(streets or [])
        check_scope(role, units=units, grids=grids, streets=streets)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        row = ApiKey(
            id=key_id,
            name=name,
            role=role,
            units=units,
            grids=grids,
            streets=streets,
            secret_sha256=digest(secret),
            rate_per_second=rate_per_second,
            created_at=utcnow(),
            expires_at=expires_at,
            revoked_at=None,
        )
        async with self.sessions() as session, session.begin():
            session.add(row)
        return _record(row), f"{KEY_PREFIX}_{key_id}_{secret}"

    async def all(self) -> list[KeyRecord]:
        """Every key, newest first."""
        async with self.sessions() as session, session.begin():
            rows = (await session.execute(select(ApiKey).order_by(ApiKey.created_at.desc()))).scalars()
            return [_record(row) for row in rows]

    async def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke a key now (a second revoke keeps the first time); None when there is no such key."""
        async with self.sessions() as session, session.begin():
            row = await session.get(ApiKey, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            record = _record(row)
        self._cache.pop(key_id, None)
        return record

    async def find(self, key_id: str) -> KeyRecord | None:
        """A key by id, from the cache when looked up less than ``cache_seconds`` ago."""
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        # One lookup per key at a time: when a busy key's entry expires, the requests in flight share one read
        # instead of each taking a connection from the pool.
        loading = self._loading.get(key_id)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._loading[key_id] = future
        try:
            record = await self._load(key_id)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unshared failure is not reported as never retrieved
            raise
        finally:
            self._loading.pop(key_id, None)
        future.set_result(record)
        if len(self._cache) > 10_000:
            self._cache.clear()  # unknown ids sent in bulk must not grow the cache without end
        self._cache[key_id] = (now, record)
        return record

    async def _load(self, key_id: str) -> KeyRecord | None:
        async with self.sessions() as session, session.begin():
            row = await session.get(ApiKey, key_id)
            return _record(row) if row is not None else None

    async def verify(self, presented: str) -> KeyRecord:
        """The key a presented API key is, or CredentialRefused."""
        parts = split_key(presented)
        if parts is None:
            raise CredentialRefused("malformed api key")
        key_id, secret = parts
        record = await self.find(key_id)
        matches = hmac.compare_digest(digest(secret), record.secret_sha256 if record else _NO_DIGEST)
        if record is None or not matches:
            raise CredentialRefused("unknown api key")
        if record.revoked_at is not None:
            raise CredentialRefused("revoked api key")
        if not record.usable_at(utcnow()):
            raise CredentialRefused("expired api key")
        return record
