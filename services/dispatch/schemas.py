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
