"""Topic names and event types shared by the services (the wire contract)."""

from __future__ import annotations

REPORTS = "jiesu.intake.reports"
CASES = "jiesu.dispatch.cases"
UNIT_PREFIX = "jiesu.dispatch.unit."
VERDICTS = "jiesu.evaluation.verdicts"

REPORT_RECEIVED = "jiesu.intake.report.received.v1"
CASE_JUDGED = "jiesu.dispatch.case.judged.v1"
CASE_DISPATCHED = "jiesu.dispatch.case.dispatched.v1"
CASE_SIGNED = "jiesu.dispatch.case.signed.v1"
CASE_PROGRESSED = "jiesu.dispatch.case.progressed.v1"
CASE_RETURNED = "jiesu.dispatch.case.returned.v1"
CASE_COMPLETED = "jiesu.dispatch.case.completed.v1"
CASE_CLOSED = "jiesu.dispatch.case.closed.v1"
CASE_REOPENED = "jiesu.dispatch.case.reopened.v1"
CASE_TRANSFERRED = "jiesu.dispatch.case.transferred.v1"
CASE_REFUSED = "jiesu.dispatch.case.refused.v1"
ASSIGNMENT_CREATED = "jiesu.dispatch.assignment.created.v1"
VERDICT_RECORDED = "jiesu.evaluation.verdict.recorded.v1"


def unit_topic(unit_code: str) -> str:
    """The topic a unit's app consumes its work from (``jiesu.dispatch.unit.<code>``)."""
    return f"{UNIT_PREFIX}{unit_code}"


def named(namespace: str, topic: str) -> str:
    """Prefix a topic with a deployment namespace (empty in production, unique per test run)."""
    return f"{namespace}{topic}"


DEAD_LETTERS = "jiesu.dead-letters"  # events a consumer could not apply, with the error; re-driven by `jiesu redrive`
# Dead letters wait for a fix and a re-drive, which may take longer than a broker keeps ordinary messages (a week
# by default): a dead-letter topic is created keeping them this long.
DEAD_LETTER_RETENTION_DAYS = 30


def creation_configs(topic: str) -> dict[str, str]:
    """The topic configs jiesu creates a topic with (namespaced or not); the broker's defaults for the rest."""
    if topic.endswith(DEAD_LETTERS):
        return {"retention.ms": str(DEAD_LETTER_RETENTION_DAYS * 86_400_000)}
    return {}


RESPONSES = "jiesu.dispatch.responses"  # department apps may send their actions here instead of over REST

CASE_EXTENSION_REQUESTED = "jiesu.dispatch.case.extension_requested.v1"
CASE_EXTENSION_DECIDED = "jiesu.dispatch.case.extension_decided.v1"
CASE_DISPUTED = "jiesu.dispatch.case.disputed.v1"
CASE_DISPUTE_ESCALATED = "jiesu.dispatch.case.dispute_escalated.v1"
CASE_CALLED_BACK = "jiesu.dispatch.case.called_back.v1"
CASE_DEADLINE_WARNING = "jiesu.dispatch.case.deadline_warning.v1"
CASE_OVERDUE = "jiesu.dispatch.case.overdue.v1"
CASE_URGED = "jiesu.dispatch.case.urged.v1"  # 催办
CASE_SUPERVISED = "jiesu.dispatch.case.supervised.v1"  # 督办
CASE_CHECKIN_MISSED = "jiesu.dispatch.case.checkin_missed.v1"
TASK_CHECKED_IN = "jiesu.dispatch.task.checked_in.v1"  # 报到
TASK_REPORTED = "jiesu.dispatch.task.reported.v1"
WHISTLE_RATED = "jiesu.dispatch.whistle.rated.v1"  # a town rates a department it called
UNIT_NOTICE = "jiesu.dispatch.unit.notice.v1"
ACTION_REJECTED = "jiesu.dispatch.action.rejected.v1"
UNIT_ACTION = "jiesu.unit.action.v1"
CASE_MERGED = "jiesu.dispatch.case.merged.v1"
