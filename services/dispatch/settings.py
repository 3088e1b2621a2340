"""Dispatch settings (env prefix ``JIESU_DISPATCH_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.guide import CITY_GUIDE
from shared.settings import PLACEHOLDER_SECRETS, ServiceSettings


class DispatchSettings(ServiceSettings):
    """Settings of the dispatch service."""

    @model_validator(mode="after")
    def _a_real_secret_in_production(self) -> DispatchSettings:
        if self.environment == "production" and self.caller_key_secret in PLACEHOLDER_SECRETS | {"development-only"}:
            raise ValueError("set JIESU_DISPATCH_CALLER_KEY_SECRET to a random secret in production")
        return self

    model_config = SettingsConfigDict(env_prefix="JIESU_DISPATCH_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/dispatch.db"
    guide_path: Path = Field(default=CITY_GUIDE, description="the dispatch guide (a city's own file may replace it)")
    model_path: Path | None = Field(
        default=None,
        description="a trained classifier (jiesu model train); unset: the shipped model if it fits the guide",
    )
    jurisdiction_path: Path | None = Field(default=None, description="a GeoJSON jurisdiction; the seed one if unset")
    confidence_threshold: float = Field(default=0.35, ge=0, le=1, description="below it a person judges (triage)")
    timezone: str = "Asia/Shanghai"
    timers: bool = Field(default=True, description="run the deadline timers in this process")
    timer_poll_seconds: float = Field(default=1.0, gt=0)
    warn_fraction: float = Field(default=0.2, gt=0, lt=1, description="warn when this share of the time is left")
    urge_after_hours: float = Field(default=24.0, gt=0, description="催办 this long after a missed deadline")
    supervise_after_working_days: int = Field(default=5, ge=1, description="督办 this long after a missed deadline")
    checkin_hours: float = Field(default=2.0, gt=0, description="报到: a whistled department must check in within")
    duplicate_window_hours: float = Field(default=72, gt=0, description="reports this close in time may merge")
    duplicate_distance_m: float = Field(default=250, gt=0, description="same kind within this distance merges")
    caller_key_secret: str = Field(
        default="development-only", description="key of the caller pseudonym used to recognise repeat callers"
    )
    max_reopens: int = Field(default=2, ge=0, description="reopen rounds before a case goes to supervision")
