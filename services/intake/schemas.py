"""Intake API models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from shared.pii import check_id_number

Source = Literal["hotline", "grid", "town"]
Urgency = Literal["normal", "urgent", "emergency"]


class Location(BaseModel):
    """A WGS-84 point."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90, strict=True)
    lon: float = Field(ge=-180, le=180, strict=True)


class Reporter(BaseModel):
    """Who reported (personal data: sealed at rest, masked outside intake, revealed only to the hotline)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9\- ]{4,19}$")
    id_number: str | None = Field(
        default=None,
        description="resident ID number (居民身份证号): 17 digits and a check digit or X, checked (GB 11643)",
        json_schema_extra={"pattern": "^[0-9]{17}[0-9Xx]$"},
    )

    @field_validator("id_number")
    @classmethod
    def _valid_id_number(cls, value: str | None) -> str | None:
        return check_id_number(value) if value is not None else None


class ReportCreate(BaseModel):
    """A report as a hotline system, grid worker app or town office sends it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: Source
    external_id: str = Field(min_length=1, max_length=128, description="the sender's own id, used for idempotency")
    content: str = Field(min_length=1, max_length=4000, description="free text, usually Chinese")
    subject: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=500)
    location: Location | None = None
    grid_code: str | None = Field(default=None, max_length=64)
    reporter: Reporter | None = None
    kind_code: str | None = Field(default=None, max_length=32, description="a grid worker's pick of kind")
    requested_departments: list[str] = Field(
        default_factory=list, max_length=20, description="departments a town whistles for (吹哨)"
    )
    urgency: Urgency | None = None
    attachments: list[AnyHttpUrl] = Field(default_factory=list, max_length=20)
    occurred_at: datetime | None = None

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _a_string(cls, value: object) -> object:
        # The schema says a date-time string: a JSON number (a Unix time?) is refused, not guessed at.
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("occurred_at is a date-time string, e.g. 2026-11-26T09:30:00+08:00")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("occurred_at needs a timezone offset, e.g. 2026-11-26T09:30:00+08:00")
        return value


class ReportAccepted(BaseModel):
    """The answer to an accepted report."""

    id: str
    case_number: str
    status: str


class ReporterMasked(BaseModel):
    """The reporter as shown outside the hotline: name 张*三, phone 138****1234, ID number 110101********123X."""

    name: str | None
    phone: str | None
    id_number: str | None = None


class ReporterRevealed(BaseModel):
    """The reporter in full (hotline, staff and admin only; every read is audited)."""

    report_id: str
    case_number: str
    reporter: Reporter | None


class ReportBatch(BaseModel):
    """Many reports in one request (at most ``MAX_BATCH_REPORTS``); each is idempotent on its own."""

    model_config = ConfigDict(extra="forbid")

    reports: list[ReportCreate] = Field(min_length=1)


class BatchItem(BaseModel):
    """The outcome for one report of a batch, in the order sent."""

    index: int
    status: int = Field(description="201 accepted, 200 a replay of an earlier report, 409 external_id reused")
    id: str | None = None
    case_number: str | None = None
    detail: str | None = None


class BatchAccepted(BaseModel):
    """The outcomes of a batch."""

    accepted: int
    replayed: int
    conflicts: int
    results: list[BatchItem]


class ReportRead(BaseModel):
    """A stored report with its current case status."""

    id: str
    case_number: str
    source: Source
    external_id: str
    status: str
    status_at: datetime
    received_at: datetime
    content: str
    subject: str | None
    address: str | None
    location: Location | None
    grid_code: str | None
    kind_code: str | None
    requested_departments: list[str]
    urgency: Urgency | None
    attachments: list[str]
    occurred_at: datetime | None
    reporter: ReporterMasked | None
