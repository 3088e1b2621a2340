"""Evaluation settings (env prefix ``JIESU_EVALUATION_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class EvaluationSettings(ServiceSettings):
    """Settings of the evaluation service."""

    model_config = SettingsConfigDict(env_prefix="JIESU_EVALUATION_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/evaluation.db"
    timezone: str = "Asia/Shanghai"
    hotspot_window_days: int = Field(default=7, ge=1, le=90)
    hotspot_min_reports: int = Field(default=3, ge=2)
