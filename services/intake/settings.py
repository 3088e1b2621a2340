"""Intake settings (env prefix ``JIESU_INTAKE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Settings of the intake service."""

    model_config = SettingsConfigDict(env_prefix="JIESU_INTAKE_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/intake.db"
    case_number_prefix: str = "JS"
    timezone: str = "Asia/Shanghai"
    max_batch_reports: int = Field(default=1000, ge=1, le=10_000)
    max_batch_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
