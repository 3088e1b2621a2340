"""The case state machine: every legal transition is allowed and every other one answers 409."""

from __future__ import annotations

import pytest

from services.dispatch.states import STATUSES, TRANSITIONS, next_status
from shared.problems import Conflict

LEGAL = [(action, src, dst) for action, (sources, dst) in TRANSITIONS.items() for src in sorted(sources)]
ILLEGAL = [
    (action, status)
    for action, (sources, _) in TRANSITIONS.items()
    for status in sorted(STATUSES)
    if status not in sources
]


@pytest.mark.parametrize(("action", "source", "target"), LEGAL)
def test_legal_transitions(action: str, source: str, target: str) -> None:
    assert next_status(action, source) == target


@pytest.mark.parametrize(("action", "status"), ILLEGAL)
def test_illegal_transitions_name_the_current_status(action: str, status: str) -> None:
    with pytest.raises(Conflict) as refused:
        next_status(action, status)
    assert refused.value.extra["current_status"] == status
    assert status in refused.value.detail


def test_a_closed_case_is_final() -> None:
    movable = [action for action, (sources, _) in TRANSITIONS.items() if "closed" in sources]
    assert movable == []
