"""Settings of authentication and authorization, shared by the three services (``JIESU_AUTH_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth.roles import ROLES, Role
from shared.settings import PLACEHOLDER_SECRETS

Algorithm = Literal["HS256", "RS256", "ES256"]
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/auth.db"
DEFAULT_RATES: dict[Role, float] = {role: 20.0 for role in ROLES} | {"hotline": 50.0, "grid": 10.0, "analyst": 5.0}


class AuthSettings(BaseSettings):
    """Where credentials live, how tokens are checked, and how fast each credential may call."""

    model_config = SettingsConfigDict(env_prefix="JIESU_AUTH_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = Field(default=DEFAULT_DATABASE_URL, description="the credential store, shared by all three")
    cache_seconds: float = Field(default=5.0, ge=0, description="how long another process may trust a looked-up key")
    jwt_secret: str | None = Field(default=None, description="HS256 secret; tokens are refused when neither is set")
    jwt_public_key: str | None = Field(default=None, description="PEM public key for RS256/ES256 tokens")
    jwt_algorithms: list[Algorithm] = Field(default_factory=lambda: list[Algorithm](["HS256"]))
    jwt_issuer: str = "jiesu"
    jwt_audience: str = "jiesu"
    token_minutes: int = Field(default=15, ge=1, le=24 * 60, description="lifetime of a token from /oauth/token")
    rate_per_second: dict[Role, float] = Field(default_factory=lambda: dict(DEFAULT_RATES))
    rate_burst_seconds: float = Field(default=2.0, gt=0, description="bucket size, in seconds of the rate")

    @model_validator(mode="after")
    def _secret_is_real(self) -> AuthSettings:
        if self.jwt_secret is not None and self.jwt_secret in PLACEHOLDER_SECRETS:
            raise ValueError("jwt_secret is a placeholder; set a real secret or leave it unset")
        if self.jwt_secret is not None and len(self.jwt_secret) < 32 and self.environment != "development":
            raise ValueError("jwt_secret must be at least 32 characters outside development")
        if self.environment == "production" and self.database_url.startswith("sqlite"):
            raise ValueError("production needs a PostgreSQL database_url for the credential store")
        return self

    def rate_of(self, role: Role, override: float | None) -> float:
        """Requests per second a credential may make: its own figure, else its role's."""
        return override if override is not None else self.rate_per_second.get(role, DEFAULT_RATES[role])
