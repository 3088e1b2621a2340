"""Dispatch API models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UnitActor(_Body):
    """The unit acting on its case."""

    unit_code: str = Field(min_length=1, max_length=64)


class SignCreate(UnitActor):
    """签收 sign for a case."""

    note: str | None = Field(default=None, max_length=1000)


class ProgressCreate(UnitActor):
    """A progress note on a case in hand."""

    note: str = Field(min_length=1, max_length=2000)


class ReturnCreate(UnitActor):
    """退单 return a case that is not this unit's to handle."""

    reason: str = Field(min_length=2, max_length=2000)


class CompleteCreate(UnitActor):
    """办结 report the result."""

    result_type: Literal["resolved", "explained", "unresolvable"] = "resolved"
    result: str = Field(min_length=1, max_length=4000, description="the reply to the citizen")


class JudgeCreate(_Body):
    """A person's decision on a case in triage."""

    kind_code: str = Field(min_length=1, max_length=32)
    primary_unit: str | None = Field(default=None, max_length=64)
    actor: str = Field(default="centre", min_length=1, max_length=128)


class ExtensionCreate(UnitActor):
    """延期: ask for more time before the completion deadline."""

    working_days: int = Field(ge=1, le=60)
    reason: str = Field(min_length=2, max_length=2000)


class ExtensionDecision(_Body):
    """The centre's answer to an extension request."""

    granted: bool
    actor: str = Field(default="centre", min_length=1, max_length=128)
    reason: str | None = Field(default=None, max_length=2000)


class CheckInCreate(UnitActor):
    """报到: a whistled department reports in on site."""

    note: str | None = Field(default=None, max_length=2000)


class TaskReportCreate(UnitActor):
    """What a cooperating or whistled unit did."""

    report: str = Field(min_length=1, max_length=4000)


class RatingCreate(_Body):
    """A town's rating of a department it called (1 = poor … 5 = excellent)."""

    unit_code: str = Field(min_length=1, max_length=64)
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)
    rated_by: str = Field(default="town", min_length=1, max_length=128)


class DisputeEscalate(_Body):
    """The level could not settle the dispute."""

    actor: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=2, max_length=2000)


class DisputeDecision(_Body):
    """The level holding the dispute decides who is responsible."""

    level: Literal["street", "district", "city"]
    decided_by: str = Field(min_length=1, max_length=128)
    primary_unit: str = Field(min_length=1, max_length=64)
    cooperating_units: list[str] | None = Field(default=None, max_length=20)
    reason: str = Field(min_length=2, max_length=2000)


class TaskRead(BaseModel):
    """A cooperating unit's share (协办) or a whistled department's check-in and report (吹哨报到)."""

    unit_code: str
    role: str
    status: str
    due_at: datetime | None
    checkin_deadline: datetime | None
    checked_in_at: datetime | None
    report: str | None
    reported_at: datetime | None
    rating: int | None


class ExtensionRead(BaseModel):
    """An extension request and its decision."""

    unit_code: str
    working_days: int
    reason: str
    status: str
    requested_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None


class DisputeRead(BaseModel):
    """A responsibility dispute and the level that settled it."""

    level: str
    status: str
    opened_at: datetime
    settled_at: datetime | None
    decided_by: str | None
    decision: dict[str, Any] | None
    history: list[dict[str, Any]]


class TrailEntry(BaseModel):
    """One entry of the case's trail."""

    seq: int
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    detail: dict[str, Any]
    hash: str


class Territory(BaseModel):
    """Where the case lies (区→街道→社区→网格) and how that was found."""

    codes: dict[str, str]
    names: dict[str, str]
    method: str


class CaseRead(BaseModel):
    """A case as the centre and its unit see it."""

    id: str
    case_number: str
    source: str
    status: str
    content: str
    subject: str | None
    address: str | None
    urgency: str
    domain_code: str | None
    category_code: str | None
    kind_code: str | None
    kind_name: str | None
    confidence: float | None
    decision: str
    judge_method: str | None
    judge_reasons: list[str]
    territory: Territory | None
    primary_unit: str | None
    cooperating_units: list[str]
    transfer_to: str | None
    sign_deadline: datetime | None
    complete_deadline: datetime | None
    deadline_basis: dict[str, str]
    reopen_count: int
    result: dict[str, Any] | None
    reporter_phone: str | None
    received_at: datetime
    updated_at: datetime
    merged_into: str | None = None
    merged_cases: list[str] = []
    returns: list[dict[str, Any]] = []
    tasks: list[TaskRead] = []
    extensions: list[ExtensionRead] = []
    disputes: list[DisputeRead] = []
    timeline: list[TrailEntry] = []


class CasePage(BaseModel):
    """One page of cases."""

    items: list[CaseRead]
    total: int
    limit: int
    offset: int


class Timeline(BaseModel):
    """A case's trail and whether its hash chain verifies."""

    case_id: str
    entries: list[TrailEntry]
    verified: bool
    first_broken_seq: int | None
