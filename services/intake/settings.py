"""Intake settings (env prefix ``JIESU_INTAKE_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.guide import CITY_GUIDE
from shared.pii import (
    DEVELOPMENT_CALLER_SECRET,
    DEVELOPMENT_KEYS,
    Keyring,
    PersonalData,
    PersonalDataError,
)
from shared.settings import PLACEHOLDER_SECRETS, ServiceSettings


class IntakeSettings(ServiceSettings):
    """Settings of the intake service."""

    # A refused setting's error must not print its value: the keys and secrets below are among them.
    model_config = SettingsConfigDict(env_prefix="JIESU_INTAKE_", extra="ignore", hide_input_in_errors=True)

    database_url: str = "sqlite+aiosqlite:///var/intake.db"
    case_number_prefix: str = "JS"
    timezone: str = "Asia/Shanghai"
    max_batch_reports: int = Field(default=1000, ge=1, le=10_000)
    max_batch_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    guide_path: Path = Field(default=CITY_GUIDE, description="the dispatch guide (a city's own file may replace it)")
    jurisdiction_path: Path | None = Field(default=None, description="a GeoJSON jurisdiction; the seed one if unset")
    open311_jurisdiction_id: str = Field(default="jiesu", min_length=1, max_length=100)
    open311_publish_all_reports: bool = Field(
        default=False,
        description="list every report in GET requests, not only those posted through Open311 (phone reports may "
        "carry personal data in their text)",
    )
    open311_contact: str = Field(default="12345 政务服务便民热线", max_length=200)
    pii_keys: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_KEYS),
        description="AES keys sealing reporters' personal data, `kid:base64key,...` (16/24/32-byte keys); the first "
        "seals new reports, all open old ones. The default is a public development key, refused elsewhere",
    )
    caller_key_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_CALLER_SECRET),
        description="key of the caller pseudonym (HMAC of the phone) dispatch uses to recognise repeat callers; "
        "the same value as dispatch's JIESU_DISPATCH_CALLER_KEY_SECRET",
    )

    @model_validator(mode="after")
    def _personal_data_keys_are_real(self) -> IntakeSettings:
        try:
            keyring = Keyring.parse(self.pii_keys.get_secret_value())
        except PersonalDataError as exc:
            raise ValueError(f"JIESU_INTAKE_PII_KEYS: {exc}") from None
        if self.environment != "development":
            if keyring.is_development():
                raise ValueError("JIESU_INTAKE_PII_KEYS holds the development placeholder key; set real keys")
            if self.caller_key_secret.get_secret_value() in PLACEHOLDER_SECRETS | {DEVELOPMENT_CALLER_SECRET}:
                raise ValueError("JIESU_INTAKE_CALLER_KEY_SECRET is a placeholder secret; set dispatch's real one")
        return self

    def personal_data(self) -> PersonalData:
        """The keyring and caller secret that protect reporters' personal data."""
        return PersonalData(
            keyring=Keyring.parse(self.pii_keys.get_secret_value()),
            caller_secret=self.caller_key_secret.get_secret_value(),
        )
