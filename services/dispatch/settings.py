"""Dispatch settings (env prefix ``JIESU_DISPATCH_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class DispatchSettings(ServiceSettings):
    """Settings of the dispatch service."""

    model_config = SettingsConfigDict(env_prefix="JIESU_DISPATCH_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/dispatch.db"
    guide_path: Path | None = Field(default=None, description="a city's own guide file; the seed guide if unset")
    jurisdiction_path: Path | None = Field(default=None, description="a GeoJSON jurisdiction; the seed one if unset")
    confidence_threshold: float = Field(default=0.35, ge=0, le=1, description="below it a person judges (triage)")
    timezone: str = "Asia/Shanghai"
