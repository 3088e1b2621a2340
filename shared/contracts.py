"""The event contract: the payload schema of every event type on every topic (the source of the AsyncAPI doc)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared import topics


class _Payload(BaseModel):
    # Consumers must ignore fields they do not know: payloads grow without a new version.
    model_config = ConfigDict(extra="allow")


class Location(_Payload):
    lat: float
    lon: float


class ReporterSummary(BaseModel):
    """The reporter as it leaves intake: masked forms and a pseudonym, never the name, phone or ID number."""

    # Closed on purpose: nothing beyond these four may travel with a report.
    model_config = ConfigDict(extra="forbid")

    name_masked: str | None = Field(description="e.g. 张* or 张*三")
    phone_masked: str | None = Field(description="e.g. 138****1234")
    id_number_masked: str | None = Field(description="身份证号 masked, e.g. 110101********123X")
    caller_key: str | None = Field(
        description="HMAC-SHA256 of the phone's digits with the deployment's caller secret: equal for the same "
        "caller, not reversible without the secret"
    )


class ReportReceived(_Payload):
    """A report as intake accepted it (接); the reporter only masked and pseudonymised (internal topic)."""

    id: str
    case_number: str
    source: Literal["hotline", "grid", "town"]
    external_id: str
    content: str
    subject: str | None = None
    address: str | None = None
    location: Location | None = None
    grid_code: str | None = None
    reporter: ReporterSummary | None = None
    kind_code: str | None = None
    requested_departments: list[str] = []
    urgency: str | None = None
    attachments: list[str] = []
    occurred_at: str | None = None
    received_at: str


class Territory(_Payload):
    codes: dict[str, str]
    names: dict[str, str]
    method: Literal["grid_code", "location", "address"]


class CaseEvent(_Payload):
    """What every case event carries; each type adds its own fields."""

    case_id: str
    case_number: str
    status: str = Field(description="the case's status after the event")
    source: Literal["hotline", "grid", "town"]
    kind_code: str | None
    category_code: str | None
    domain_code: str | None
    primary_unit: str | None
    cooperating_units: list[str]
    territory: Territory | None
    urgency: str
    reopen_count: int


CALLER_KEY = (
    "a keyed pseudonym of the caller (HMAC of the phone number): equal for the same caller, not reversible "
    "without the key; never the phone itself. Only on the internal case topic, never on a unit's topic"
)


class CaseJudged(CaseEvent):
    decision: Literal["dispatch", "triage", "transfer", "refuse", "merge"]
    reasons: list[str]
    caller_key: str | None = Field(default=None, description=CALLER_KEY)


class CaseDispatched(CaseEvent):
    redispatched: bool
    sign_deadline: str | None
    complete_deadline: str | None
    deadline_basis: dict[str, str]
    caller_key: str | None = Field(default=None, description=CALLER_KEY)


class UnitAct(CaseEvent):
    unit_code: str


class CaseSigned(UnitAct):
    on_time: bool
    sign_deadline: str | None


class CaseCompleted(UnitAct):
    on_time: bool
    result_type: Literal["resolved", "explained", "unresolvable"]
    result: str
    cooperation: list[dict[str, Any]]


class CaseReturned(UnitAct):
    reason: str


class TimerFired(CaseEvent):
    timer: str
    due_at: str
    deadline: Literal["sign", "complete", "checkin"]
    unit_code: str | None


class WhistleRated(UnitAct):
    score: int = Field(ge=1, le=5)
    rated_by: str
    town: str | None


class Assignment(CaseEvent):
    """Work for a unit on its own topic; the reporter's phone is masked."""

    unit_code: str
    role: Literal["primary", "cooperating"]
    reason: Literal["dispatched", "redispatched", "reopened"]
    content: str
    subject: str | None
    address: str | None
    location: Location | None
    reporter_phone: str | None = Field(description="masked, e.g. 138****1234")
    sign_deadline: str | None
    complete_deadline: str | None


class UnitNotice(CaseEvent):
    """A warning, overdue notice, urging (催办) or supervision (督办) for the unit."""

    unit_code: str
    notice: Literal["warn", "overdue", "urge", "supervise", "escalate"]
    deadline: str
    due_at: str


class ActionRejected(_Payload):
    """A unit's action sent as an event was refused; nothing changed."""

    case_id: str
    action: str
    unit_code: str
    status: int
    detail: str


class UnitAction(_Payload):
    """A unit's action sent on the responses topic, validated like the REST body of the same action."""

    case_id: str
    action: Literal["sign", "progress", "return", "complete", "extension", "checkin", "report"]
    unit_code: str


class VerdictRecorded(_Payload):
    """Evaluation's verdict after the call-back: dispatch closes or reopens the case."""

    case_id: str
    case_number: str
    round: int
    verdict: Literal["closed", "reopened"]
    unit_code: str | None
    outcome: str | None = Field(default=None, description="how the round ended, e.g. satisfied, not the unit's fault")
    score: float | None = Field(default=None, description="the case's score (按件考核) once closed")
    feedback: dict[str, Any] = Field(
        description="respondent, outcome, resolved, satisfaction, fault, fault_reason, counted, attempts, comment"
    )


@dataclass(frozen=True)
class Channel:
    """A topic, who writes it, and the event types on it."""

    address: str
    title: str
    description: str
    publisher: str
    messages: dict[str, type[_Payload]]
    parameters: dict[str, str] | None = None


CASE_TYPES: dict[str, type[_Payload]] = {
    topics.CASE_JUDGED: CaseJudged,
    topics.CASE_DISPATCHED: CaseDispatched,
    topics.CASE_SIGNED: CaseSigned,
    topics.CASE_PROGRESSED: UnitAct,
    topics.CASE_RETURNED: CaseReturned,
    topics.CASE_DISPUTED: CaseEvent,
    topics.CASE_DISPUTE_ESCALATED: CaseEvent,
    topics.CASE_EXTENSION_REQUESTED: UnitAct,
    topics.CASE_EXTENSION_DECIDED: CaseEvent,
    topics.CASE_COMPLETED: CaseCompleted,
    topics.CASE_CALLED_BACK: CaseEvent,
    topics.CASE_CLOSED: CaseEvent,
    topics.CASE_REOPENED: CaseEvent,
    topics.CASE_MERGED: CaseEvent,
    topics.CASE_REFUSED: CaseEvent,
    topics.CASE_TRANSFERRED: CaseEvent,
    topics.CASE_DEADLINE_WARNING: TimerFired,
    topics.CASE_OVERDUE: TimerFired,
    topics.CASE_URGED: TimerFired,
    topics.CASE_SUPERVISED: CaseEvent,
    topics.CASE_CHECKIN_MISSED: TimerFired,
    topics.TASK_CHECKED_IN: UnitAct,
    topics.TASK_REPORTED: UnitAct,
    topics.WHISTLE_RATED: WhistleRated,
}

CHANNELS: list[Channel] = [
    Channel(
        topics.REPORTS,
        "Reports received",
        "Every accepted report, once.",
        "intake",
        {topics.REPORT_RECEIVED: ReportReceived},
    ),
    Channel(topics.CASES, "Case lifecycle", "Every change of every case, in order per case.", "dispatch", CASE_TYPES),
    Channel(
        f"{topics.UNIT_PREFIX}{{unitCode}}",
        "A unit's work",
        "Assignments and notices for one unit.",
        "dispatch",
        {topics.ASSIGNMENT_CREATED: Assignment, topics.UNIT_NOTICE: UnitNotice, topics.ACTION_REJECTED: ActionRejected},
        {"unitCode": "the unit's code, e.g. DEPT-UM or ST-110199001"},
    ),
    Channel(
        topics.RESPONSES,
        "Units' actions",
        "Actions a department app sends instead of calling REST.",
        "department apps",
        {topics.UNIT_ACTION: UnitAction},
    ),
    Channel(
        topics.VERDICTS,
        "Call-back verdicts",
        "Close or reopen a completed case.",
        "evaluation",
        {topics.VERDICT_RECORDED: VerdictRecorded},
    ),
]


def payload_model(event_type: str) -> type[_Payload] | None:
    """The payload schema of an event type, if it is part of the contract."""
    for channel in CHANNELS:
        if event_type in channel.messages:
            return channel.messages[event_type]
    return None
