"""API models of the rates, rankings and unit scores."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

Level = Literal["department", "street", "community", "grid", "category", "kind", "city"]
RankLevel = Literal["department", "street", "community", "grid", "category", "kind"]
By = Literal["kind", "category"]


class Rate(BaseModel):
    """A rate with the counts it is made of."""

    value: float | None = Field(description="numerator / denominator, null when nothing to count")
    numerator: int
    denominator: int


class RateDefinition(BaseModel):
    """What a rate counts."""

    name: str
    numerator: str
    denominator: str
    better: Literal["higher", "lower"]


class Quantile(BaseModel):
    """A quantile of handling time read from the row's histogram: exact bucket, interpolated hours."""

    hours: float
    bucket_from_hours: float
    bucket_to_hours: float | None = Field(description="null for the open last bucket")


class HandlingTime(BaseModel):
    """Dispatched → first completion, per assignment."""

    cases: int
    mean_hours: float | None
    median: Quantile | None
    p90: Quantile | None


class BottomUp(BaseModel):
    """Towns' ratings of a department they called (1–5): the bottom-up share of its score."""

    mean: float | None
    ratings: int


class ScoreSummary(BaseModel):
    """Mean per-case score (按件考核) of the closed cases."""

    mean: float | None
    cases: int


class UnitMetrics(BaseModel):
    """The rates and their counts for one unit (or category, kind, the city) and period."""

    level: str
    unit_code: str
    kind_code: str | None
    category_code: str | None
    period: str
    dispatched: int
    signed: int
    completed: int
    feedback: int = Field(description="answered call-backs")
    callbacks_counted: int
    not_unit_fault: int
    unreachable: int
    reopened: int
    returned: int
    returned_without_cause: int
    extended: int
    overdue: int
    closed: int
    response_rate: Rate
    resolution_rate: Rate
    satisfaction_rate: Rate
    on_time_sign_rate: Rate
    on_time_completion_rate: Rate
    return_rate: Rate
    reopen_rate: Rate
    extension_rate: Rate
    overdue_rate: Rate
    handling_time: HandlingTime
    case_score: ScoreSummary
    bottom_up_rating: BottomUp


class MetricsPage(BaseModel):
    """Metrics for the requested level, units and periods."""

    level: Level
    unit: str | None
    kind: str | None
    category: str | None
    by: By | None
    grouping: Literal["day", "week", "month", "quarter", "all"]
    date_from: date | None
    date_to: date | None
    definitions: dict[str, RateDefinition]
    notes: list[str]
    items: list[UnitMetrics]


class Interval(BaseModel):
    """A Wilson score interval."""

    lower: float
    upper: float


class RankedUnit(BaseModel):
    """One unit's standing on the metric."""

    rank: int | None = Field(description="null for units below the minimum sample")
    unit_code: str
    value: float | None
    numerator: int
    denominator: int
    interval: Interval | None
    ranked_by: float | None = Field(description="the bound the ranking sorts on")


class RankingPage(BaseModel):
    """Units ranked fairly: by a confidence bound, not by the raw rate."""

    metric: str
    definition: RateDefinition
    level: RankLevel
    period: str
    date_from: date
    date_to: date
    confidence: float
    z: float
    min_sample: int
    rule: str
    ranked: list[RankedUnit]
    unranked: list[RankedUnit] = Field(description="below the minimum sample: listed, not ranked")


class ScorePart(BaseModel):
    """One part of a composite score, on a 0–100 scale."""

    part: str
    value: float | None
    weight: float


class UnitScore(BaseModel):
    """A unit's composite score: the case-based part and the towns' ratings."""

    unit_code: str
    stationed: bool
    case_part: float | None
    case_parts: list[ScorePart]
    bottom_up_part: float | None
    bottom_up_ratings: int
    bottom_up_share: float = Field(description="share of the bottom-up part in the composite when it applies")
    bottom_up_applied: bool
    composite: float | None
    note: str | None


class UnitScorePage(BaseModel):
    """Composite unit scores with their formula and weights."""

    level: RankLevel
    period: str
    date_from: date
    date_to: date
    formula: str
    weights: dict[str, float]
    bottom_up_share: float
    stationed_bottom_up_share: float
    items: list[UnitScore]
