"""Intake settings (env prefix ``JIESU_INTAKE_``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.guide import CITY_GUIDE
from shared.settings import PLACEHOLDER_SECRETS, ServiceSettings


class IntakeSettings(ServiceSettings):
    """Settings of the intake service."""

    model_config = SettingsConfigDict(env_prefix="JIESU_INTAKE_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/intake.db"
    case_number_prefix: str = "JS"
    timezone: str = "Asia/Shanghai"
    max_batch_reports: int = Field(default=1000, ge=1, le=10_000)
    max_batch_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    guide_path: Path = Field(default=CITY_GUIDE, description="the dispatch guide (a city's own file may replace it)")
    jurisdiction_path: Path | None = Field(default=None, description="a GeoJSON jurisdiction; the seed one if unset")
    open311_jurisdiction_id: str = Field(default="jiesu", min_length=1, max_length=100)
    open311_api_keys_sha256: list[str] = Field(
        default_factory=list,
        description="SHA-256 hex digests of the Open311 API keys allowed to post requests (the keys never stored)",
    )
    open311_publish_all_reports: bool = Field(
        default=False,
        description="list every report in GET requests, not only those posted through Open311 (phone reports may "
        "carry personal data in their text)",
    )
    open311_contact: str = Field(default="12345 政务服务便民热线", max_length=200)

    @model_validator(mode="after")
    def _open311_keys_are_real(self) -> IntakeSettings:
        digests = [d.lower() for d in self.open311_api_keys_sha256]
        if any(len(d) != 64 or any(c not in "0123456789abcdef" for c in d) for d in digests):
            raise ValueError("open311_api_keys_sha256 holds SHA-256 hex digests (64 hex digits), not keys")
        placeholders = {hashlib.sha256(s.encode()).hexdigest() for s in PLACEHOLDER_SECRETS}
        if self.environment != "development" and placeholders & set(digests):
            raise ValueError("an Open311 API key is a placeholder secret; set a real key outside development")
        self.open311_api_keys_sha256 = digests
        return self
