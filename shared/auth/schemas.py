"""Request and answer bodies of the credential and audit endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.auth.roles import Role
from shared.auth.store import KeyRecord

Code = Field(min_length=1, max_length=64)


class ApiKeyCreate(BaseModel):
    """A new API key: its role and the scope a unit, grid or town role needs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="who or what holds the key")
    role: Role
    units: list[str] = Field(default_factory=list, max_length=100, description="unit codes (role unit)")
    grids: list[str] = Field(default_factory=list, max_length=1000, description="grid codes (role grid)")
    streets: list[str] = Field(default_factory=list, max_length=100, description="street codes (role town)")
    expires_at: datetime | None = Field(default=None, description="after this the key is refused")
    rate_per_second: float | None = Field(default=None, gt=0, le=10_000, description="overrides the role's rate")

    @field_validator("units", "grids", "streets")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        if any(not 1 <= len(code) <= 64 for code in value):
            raise ValueError("each code has 1 to 64 characters")
        return value

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2027-01-01T00:00:00+08:00")
        return value


class ApiKeyRead(BaseModel):
    """An API key as listed: never its secret."""

    id: str
    name: str
    role: Role
    units: list[str]
    grids: list[str]
    streets: list[str]
    rate_per_second: float | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: KeyRecord) -> ApiKeyRead:
        """The listing of a stored key."""
        return cls(
            id=record.id,
            name=record.name,
            role=record.role,
            units=list(record.units),
            grids=list(record.grids),
            streets=list(record.streets),
            rate_per_second=record.rate_per_second,
            created_at=record.created_at,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
        )


class ApiKeyCreated(ApiKeyRead):
    """A key just made, with its plain text: shown this once, store it now."""

    key: str = Field(description="the API key itself; it cannot be shown again")


class AuditRead(BaseModel):
    """One row of the audit log."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    service: str
    credential_id: str | None
    role: str | None
    action: str
    method: str
    path: str
    outcome: str = Field(description="denied (401, 403, 429) or allowed (a read of personal data)")
    status: int
    detail: dict[str, Any]


class AuditPage(BaseModel):
    """Audit rows, newest first."""

    items: list[AuditRead]
    limit: int
    offset: int
    more: bool


class TokenAnswer(BaseModel):
    """An OAuth2 access token (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
