"""Settings base shared by every service: database, bus and environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
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
    kafka_partitions: int = Field(default=3, ge=1, description="partitions of each topic this service creates")
    kafka_publish_timeout: float = Field(
        default=15.0, gt=0, description="seconds to wait for the broker's acknowledgement before starting anew"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_username: str = Field(default="", description="the service's Kafka principal, e.g. jiesu-dispatch")
    kafka_password: SecretStr = SecretStr("")
    kafka_ca_file: Path | None = Field(default=None, description="CA bundle for SSL/SASL_SSL; system CAs if unset")
    topic_namespace: str = ""
    consumers: bool = True
    relay: bool = False
    relay_batch_size: int = 500
    relay_poll_seconds: float = 0.2
    max_body_bytes: int = 64 * 1024
    max_in_flight: int = Field(
        default=256,
        ge=0,
        description="writes (POST, PUT, PATCH, DELETE) a process handles at once; more are answered 503 at once "
        "with Retry-After instead of queueing (0: no limit)",
    )
    # Housekeeping (shared/retention.py): what is kept, in days; 0 keeps it for ever.
    keep_published_days: float = Field(default=7, ge=0, description="published outbox rows")
    keep_inbox_days: float = Field(
        default=30, ge=0, description="inbox rows; also for as long as the bus could deliver their events again"
    )
    keep_bus_days: float = Field(
        default=7, ge=0, description="embedded bus messages every consumer group has read (unread ones stay)"
    )
    housekeeping_seconds: float = Field(default=600, ge=0, description="between housekeeping runs; 0: never")

    @model_validator(mode="after")
    def _production_is_explicit(self) -> ServiceSettings:
        if self.environment == "production" and self.database_url.startswith("sqlite"):
            raise ValueError("production needs a PostgreSQL database_url, not SQLite")
        if self.kafka_security_protocol.startswith("SASL"):
            password = self.kafka_password.get_secret_value()
            if not self.kafka_username or not password:
                raise ValueError(f"{self.kafka_security_protocol} needs kafka_username and kafka_password")
            if self.environment != "development" and password in PLACEHOLDER_SECRETS:
                raise ValueError("kafka_password is a placeholder; set the principal's real password")
        return self
