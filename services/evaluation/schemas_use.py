"""API models of the "use" step (用): hot spots, repeat complaints, the monthly issue list, guide suggestions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.evaluation.schemas_metrics import Rate


class Member(BaseModel):
    """A case in a cluster."""

    case_id: str
    case_number: str
    source: str
    kind_code: str | None
    status: str
    primary_unit: str | None = None
    judged_at: datetime
    grid_code: str | None
    community_code: str | None
    address: str | None
    lat: float | None
    lon: float | None


class Point(BaseModel):
    """A GPS point (WGS84 degrees)."""

    lat: float
    lon: float


class Heat(BaseModel):
    """The heat index and every factor in it."""

    index: float
    reports: int
    previous_reports: int
    growth: float = Field(description="(reports − previous) ÷ max(previous, 1)")
    growth_factor: float
    reporters: int = Field(description="estimated distinct reporters (see the formula)")
    reporter_factor: float
    severity: float = Field(description="mean urgency weight of the reports")


class Hotspot(BaseModel):
    """Reports about one place and one problem within the window, across sources and wording."""

    category_code: str
    kind_code: str = Field(description="the kind most reports carry")
    kind_codes: dict[str, int]
    place_code: str | None = Field(description="the grid (or community) most reports lie in")
    place_name: str | None
    centre: Point | None
    radius_m: float | None = Field(description="furthest GPS report from the centre")
    reports: int
    sources: dict[str, int]
    first_at: datetime
    last_at: datetime
    heat: Heat
    case_ids: list[str]
    members: list[Member]


class HotspotPage(BaseModel):
    """Hot spots, hottest first, and how they were found and ranked."""

    window_days: int
    window_from: datetime
    window_to: datetime
    min_reports: int
    radius_m: float
    place_level: str
    clustering: str
    formula: str
    items: list[Hotspot]


class RepeatComplaint(BaseModel):
    """The same matter reported again by the same caller or from the same address or spot."""

    rule: Literal["same_caller", "same_place"] = Field(description="which rule matched")
    kind_code: str
    place: str = Field(
        description="same_place: the address (normalised) or GPS spot the reports share; same_caller: `caller:` and "
        "the start of the caller's keyed pseudonym (never the phone)"
    )
    address: str | None
    cases: int
    units: list[str] = Field(description="the units the cases were sent to: the group is flagged for each")
    after_closing: int = Field(description="reports made after an earlier one of the group was closed")
    reopened_rounds: int
    first_at: datetime
    last_at: datetime
    members: list[Member]


class RepeatMark(BaseModel):
    """This case repeats earlier reports of its kind (重复投诉), flagged for its unit and the centre."""

    rule: Literal["same_caller", "same_place"]
    repeat_of: list[str] = Field(description="case numbers of the earlier reports, oldest first")
    window_days: int


class RepeatPage(BaseModel):
    """Repeat complaints in the window."""

    window_days: int
    window_from: datetime
    window_to: datetime
    min_cases: int
    unit: str | None
    rule: str
    items: list[RepeatComplaint]


class PlaceCount(BaseModel):
    """Cases of the issue in one street."""

    street_code: str
    cases: int


class MonthlyIssue(BaseModel):
    """A problem that deserves proactive work (每月一题), with the evidence."""

    rank: int
    kind_code: str
    category_code: str | None
    priority: float
    cases: int
    previous_cases: int
    growth: float
    streets: int
    top_streets: list[PlaceCount]
    satisfaction_rate: Rate
    resolution_rate: Rate
    reopen_rate: Rate
    repeat_cases: int
    repeat_share: float
    hotspots: int
    examples: list[str]


class MonthlyIssuePage(BaseModel):
    """The month's issue list."""

    month: str
    date_from: date
    date_to: date
    min_cases: int
    formula: str
    items: list[MonthlyIssue]


class GuideSuggestion(BaseModel):
    """A suggested change to the guide for one kind, with the evidence."""

    kind_code: str
    category_code: str | None
    suggestion: str = Field(description="change_primary_unit, refine_kind, clarify_duty or settle_responsibility")
    text: str
    dispatched: int
    return_rate: Rate
    reroute_rate: Rate
    returned_without_cause: int
    disputes: int
    to_kinds: dict[str, int]
    to_units: dict[str, int]
    return_reasons: list[str]
    examples: list[str]


class GuidePage(BaseModel):
    """Suggested guide changes over the period."""

    date_from: date
    date_to: date
    min_cases: int
    return_rate_threshold: float
    reroute_rate_threshold: float
    rule: str
    items: list[GuideSuggestion]
