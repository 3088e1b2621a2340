"""Intake settings (env prefix ``JIESU_INTAKE_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Settings of the intake service."""

    model_config = SettingsConfigDict(env_prefix="JIESU_INTAKE_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/intake.db"
    case_number_prefix: str = "JS"
