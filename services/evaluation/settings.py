"""Evaluation settings (env prefix ``JIESU_EVALUATION_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ScoreRules(BaseModel):
    """Points of the per-case score (按件考核): rewards for what went right, penalties for what went wrong."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signed_on_time: float = Field(default=10, ge=0, description="signed (签收) before the sign deadline")
    completed_on_time: float = Field(default=20, ge=0, description="completed (办结) before the deadline")
    resolved: float = Field(default=30, ge=0, description="the call-back answered resolved")
    satisfied: float = Field(default=40, ge=0, description="the call-back answered satisfied")
    basically_satisfied: float = Field(default=30, ge=0, description="answered basically satisfied")
    returned_without_cause: float = Field(default=-10, le=0, description="per return the centre sent back (退单无据)")
    reopened: float = Field(default=-10, le=0, description="per reopened round (重办)")
    extended: float = Field(default=-5, le=0, description="per granted extension (延期)")

    @model_validator(mode="after")
    def _basically_below_satisfied(self) -> ScoreRules:
        if self.basically_satisfied > self.satisfied:
            raise ValueError("basically_satisfied may not earn more than satisfied")
        return self


DEFAULT_WEIGHTS = {
    "case_score": 0.4,
    "satisfaction_rate": 0.2,
    "resolution_rate": 0.2,
    "response_rate": 0.1,
    "on_time_completion_rate": 0.1,
}
COMPOSITE_PARTS = frozenset(DEFAULT_WEIGHTS)
DEFAULT_CELL_M = 200.0


class EvaluationSettings(ServiceSettings):
    """Settings of the evaluation service."""

    model_config = SettingsConfigDict(env_prefix="JIESU_EVALUATION_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/evaluation.db"
    timezone: str = "Asia/Shanghai"

    # 回访 call-backs
    callback_max_attempts: int = Field(default=3, ge=1, le=10, description="failed calls before closing unreachable")
    respondents: dict[str, list[str]] = Field(
        default={"hotline": ["citizen"], "grid": ["grid_worker"], "town": ["town"]},
        description="who may answer the call-back of a case, by the case's source (the first is the default)",
    )

    # 按件考核 and the composite unit score
    score_rules: ScoreRules = ScoreRules()
    composite_weights: dict[str, float] = Field(default=DEFAULT_WEIGHTS, description="weights of the case-based part")
    bottom_up_share: float = Field(default=0.3, ge=0.3, le=1, description="towns' ratings' share of a department")
    stationed_bottom_up_share: float = Field(default=0.6, ge=0.6, le=1, description="share for units in a town")
    stationed_units: list[str] = Field(default=[], description="units stationed in a town (派驻机构)")

    # fair rankings
    ranking_confidence: float = Field(default=0.95, ge=0.5, le=0.999)
    ranking_min_sample: int = Field(default=30, ge=1, description="units with fewer cases are listed, unranked")

    # 用 use: hot spots, repeat complaints, 每月一题, the guide
    hotspot_window_days: int = Field(default=7, ge=1, le=90)
    hotspot_min_reports: int = Field(default=3, ge=2)
    hotspot_radius_m: float = Field(
        default=DEFAULT_CELL_M, gt=0, le=5000, description="side of the square a report located only by GPS falls in"
    )
    hotspot_place_level: Literal["grid", "community"] = Field(default="grid", description="same area = one place")
    repeat_window_days: int = Field(default=90, ge=1, le=366)
    monthly_issue_min_cases: int = Field(default=5, ge=1)
    guide_min_cases: int = Field(default=10, ge=1, description="kinds with fewer dispatches get no suggestion")
    guide_return_rate: float = Field(default=0.15, gt=0, le=1, description="return rate that calls for a review")
    guide_reroute_rate: float = Field(default=0.10, gt=0, le=1, description="re-route rate that calls for a review")

    @model_validator(mode="after")
    def _weights_known(self) -> EvaluationSettings:
        unknown = set(self.composite_weights) - COMPOSITE_PARTS
        if unknown:
            raise ValueError(f"unknown composite weights {sorted(unknown)}; known: {sorted(COMPOSITE_PARTS)}")
        if any(w < 0 for w in self.composite_weights.values()) or sum(self.composite_weights.values()) <= 0:
            raise ValueError("composite weights must be non-negative and not all zero")
        return self
