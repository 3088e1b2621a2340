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
