"""Evaluation API models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied"]


class FeedbackCreate(BaseModel):
    """The citizen's answer to the call-back (回访) of a completed case."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    case_id: str = Field(min_length=1, max_length=36)
    resolved: bool
    satisfaction: Satisfaction
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackRead(BaseModel):
    """Recorded feedback and the verdict it led to."""

    case_id: str
    round: int
    resolved: bool
    satisfaction: Satisfaction
    comment: str | None
    verdict: Literal["closed", "reopened"]
    recorded_at: datetime


class Rate(BaseModel):
    """A rate with the counts it is made of."""

    value: float | None = Field(description="numerator / denominator, null when nothing to count")
    numerator: int
    denominator: int


class BottomUp(BaseModel):
    """Towns' ratings of a department they called (1–5): the bottom-up share of its score."""

    mean: float | None
    ratings: int


class UnitMetrics(BaseModel):
    """The three rates (三率) and their counts for one unit and period."""

    unit_code: str
    period: str
    dispatched: int
    signed: int
    completed: int
    feedback: int
    reopened: int
    response_rate: Rate
    resolution_rate: Rate
    satisfaction_rate: Rate
    on_time_sign_rate: Rate
    on_time_completion_rate: Rate
    overdue: int
    bottom_up_rating: BottomUp


class MetricsPage(BaseModel):
    """Metrics for the requested units and periods."""

    grouping: Literal["day", "month", "all"]
    date_from: date | None
    date_to: date | None
    definitions: dict[str, str]
    items: list[UnitMetrics]


class Hotspot(BaseModel):
    """Many reports of one kind of problem in one place within the window."""

    kind_code: str
    place_code: str
    place_name: str | None
    reports: int
    first_at: datetime
    last_at: datetime
    case_ids: list[str]


class HotspotPage(BaseModel):
    """Hot spots, most reports first."""

    window_days: int
    min_reports: int
    items: list[Hotspot]


class EvaluationRead(BaseModel):
    """Evaluation's view of one case."""

    case_id: str
    case_number: str
    status: str
    primary_unit: str | None
    kind_code: str | None
    round: int
    awaiting_feedback: bool
    feedback: list[FeedbackRead]
