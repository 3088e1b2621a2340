"""The case state machine: which action may move a case from which status to which."""

from __future__ import annotations

from typing import Final

from shared.problems import Conflict

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: Final[dict[str, tuple[frozenset[str], str]]] = {
    "judge": (frozenset({"received"}), "judged"),
    "dispatch": (frozenset({"judged", "triage"}), "dispatched"),
    "redispatch": (frozenset({"returned", "disputed"}), "dispatched"),  # re-dispatched after a return or dispute
    "triage": (frozenset({"judged"}), "triage"),
    "transfer": (frozenset({"judged"}), "transferred"),  # emergencies: 110/119/120/122
    "refuse": (frozenset({"judged", "triage"}), "refused"),  # 不予受理
    "merge": (frozenset({"judged", "triage", "dispatched"}), "merged"),  # a duplicate joins the first case
    "sign": (frozenset({"dispatched", "reopened"}), "signed"),  # 签收
    "progress": (frozenset({"signed", "in_progress"}), "in_progress"),
    "return": (frozenset({"dispatched", "signed"}), "returned"),  # 退单
    "dispute": (frozenset({"returned"}), "disputed"),  # 三级会商
    "request_extension": (frozenset({"signed", "in_progress"}), "extension_requested"),  # 延期
    "grant_extension": (frozenset({"extension_requested"}), "in_progress"),
    "refuse_extension": (frozenset({"extension_requested"}), "in_progress"),
    "complete": (frozenset({"signed", "in_progress", "extension_requested"}), "completed"),  # 办结
    "call_back": (frozenset({"completed"}), "called_back"),  # 回访
    "close": (frozenset({"called_back"}), "closed"),
    "reopen": (frozenset({"called_back"}), "reopened"),  # 重办
}
STATUSES: Final[frozenset[str]] = frozenset(
    {"received"} | {to for _, to in TRANSITIONS.values()} | {s for froms, _ in TRANSITIONS.values() for s in froms}
)


def next_status(action: str, current: str) -> str:
    """The status an action leads to, or 409 naming the current status."""
    allowed, target = TRANSITIONS[action]
    if current not in allowed:
        raise Conflict(
            f"cannot {action} a case that is {current}; allowed from: {', '.join(sorted(allowed))}",
            current_status=current,
            action=action,
        )
    return target
