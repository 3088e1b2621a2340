"""Evaluation API models: call-backs and one case's evaluation."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.evaluation.schemas_use import RepeatMark

Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied"]
Respondent = Literal["citizen", "grid_worker", "town"]
Fault = Literal["unit", "not_unit"]


class FeedbackCreate(BaseModel):
    """The answer to the call-back (回访) of a completed case."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    case_id: str = Field(min_length=1, max_length=36)
    respondent: Respondent | None = Field(
        default=None, description="who answered; the case's source decides who may (default: the one it names first)"
    )
    resolved: bool
    satisfaction: Satisfaction
    fault: Fault = Field(
        default="unit",
        description="for an unresolved or dissatisfied answer: `unit` reopens the case to the same unit; `not_unit` "
        "(e.g. the citizen wants what the law does not allow) closes it without counting against the unit",
    )
    fault_reason: str | None = Field(default=None, max_length=2000, description="required when fault is not_unit")
    comment: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _fault_needs_a_complaint_and_a_reason(self) -> FeedbackCreate:
        if self.fault == "not_unit":
            if self.resolved and self.satisfaction != "dissatisfied":
                raise ValueError("fault not_unit applies only to an unresolved or dissatisfied answer")
            if not self.fault_reason:
                raise ValueError("fault not_unit needs fault_reason: why it is not the unit's fault")
        return self


class FeedbackRead(BaseModel):
    """A recorded call-back round and the verdict it led to."""

    case_id: str
    round: int
    respondent: str
    outcome: Literal["answered", "unreachable"]
    resolved: bool | None
    satisfaction: Satisfaction | None
    fault: Fault | None
    fault_reason: str | None
    counted: bool = Field(description="whether it counts in the unit's resolution and satisfaction rates")
    attempts: int = Field(description="failed call-back attempts before this outcome")
    comment: str | None
    verdict: Literal["closed", "reopened"]
    recorded_at: datetime


class AttemptCreate(BaseModel):
    """A call-back that did not reach the respondent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    case_id: str = Field(min_length=1, max_length=36)
    respondent: Respondent | None = None
    note: str | None = Field(default=None, max_length=2000)


class AttemptRead(BaseModel):
    """Failed attempts so far; the last allowed one closes the case as unreachable."""

    case_id: str
    round: int
    attempts: int
    attempts_allowed: int
    verdict: Literal["closed"] | None = Field(description="closed (unreachable) once the attempts are used up")
    feedback: FeedbackRead | None


class ScoreItem(BaseModel):
    """One rule of the per-case score."""

    rule: str
    points: float
    possible: float = Field(description="the reward this rule could give; 0 for a penalty")
    note: str


class CaseScore(BaseModel):
    """The per-case score (按件考核) and how it was reached."""

    score: float | None = Field(description="null while nothing can be assessed yet")
    final: bool = Field(description="final once evaluation closed the case; provisional before")
    earned: float
    possible: float
    penalties: float
    items: list[ScoreItem]
    formula: str
    rules: dict[str, float]


class AssignmentRead(BaseModel):
    """One dispatch of the case to a unit and what it added to the roll-ups."""

    unit_code: str
    kind_code: str | None
    category_code: str | None
    day: date
    dispatched_at: datetime
    returned_by: str | None
    return_reason: str | None
    counters: dict[str, float]


class EvaluationRead(BaseModel):
    """Evaluation's view of one case."""

    case_id: str
    case_number: str
    source: str
    status: str
    primary_unit: str | None
    kind_code: str | None
    category_code: str | None
    territory: dict[str, str | None]
    round: int
    awaiting_feedback: bool
    callback_attempts: int
    attempts_allowed: int
    allowed_respondents: list[str]
    outcome: str | None
    score: CaseScore
    assignments: list[AssignmentRead]
    feedback: list[FeedbackRead]
    repeats: list[RepeatMark] = Field(
        default=[], description="重复投诉: earlier reports of the kind this case repeats, by caller or by place"
    )


def assignment_read(raw: dict[str, Any]) -> AssignmentRead:
    """An assignment as stored on the case, for the API."""
    return AssignmentRead(
        unit_code=raw["unit"],
        kind_code=raw["kind"],
        category_code=raw["category"],
        day=date.fromisoformat(raw["day"]),
        dispatched_at=datetime.fromisoformat(raw["dispatched_at"]),
        returned_by=raw.get("returned_by"),
        return_reason=raw.get("return_reason"),
        counters=raw["counters"],
    )
