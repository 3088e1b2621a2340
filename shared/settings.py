"""Settings base shared by every service: database, bus and environment."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "CHANGE-ME", "secret"}


class ServiceSettings(BaseSettings):
    """What every service needs; each service subclasses it with its own env prefix."""

    model_config = SettingsConfigDict(extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///var/service.db"
    bus: Literal["embedded", "kafka"] = "embedded"
    embedded_bus_url: str = "sqlite+aiosqlite:///var/bus.db"
    kafka_bootstrap_servers: str = "127.0.0.1:59092"
    topic_namespace: str = ""
    consumers: bool = True
    relay: bool = False
    relay_batch_size: int = 500
    relay_poll_seconds: float = 0.2
    max_body_bytes: int = 64 * 1024

    @model_validator(mode="after")
    def _production_is_explicit(self) -> ServiceSettings:
        if self.environment == "production" and self.database_url.startswith("sqlite"):
            raise ValueError("production needs a PostgreSQL database_url, not SQLite")
        return self
