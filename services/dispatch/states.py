"""The case state machine: which action may move a case from which status to which."""

from __future__ import annotations

from typing import Final

from shared.problems import Conflict

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: Final[dict[str, tuple[frozenset[str], str]]] = {
    "judge": (frozenset({"received"}), "judged"),
    "dispatch": (frozenset({"judged", "triage", "returned"}), "dispatched"),
    "triage": (frozenset({"judged"}), "triage"),
    "transfer": (frozenset({"judged"}), "transferred"),
    "sign": (frozenset({"dispatched", "reopened"}), "signed"),  # 签收
    "progress": (frozenset({"signed", "in_progress"}), "in_progress"),
    "return": (frozenset({"dispatched", "signed"}), "returned"),  # 退单
    "complete": (frozenset({"signed", "in_progress"}), "completed"),  # 办结
    "close": (frozenset({"completed"}), "closed"),
    "reopen": (frozenset({"completed"}), "reopened"),  # 重办
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
