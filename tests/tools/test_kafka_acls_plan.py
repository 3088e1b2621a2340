"""The ACL plan covers what each service really consumes and gives a unit nothing of another unit's."""

from __future__ import annotations

from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from services.dispatch import consumers as dispatch_consumers
from services.evaluation import consumers as evaluation_consumers
from services.intake import consumers as intake_consumers
from shared import topics
from shared.consumer import ConsumerSpec
from tools.kafka_acls.plan import Grant, Plan, build_plan, service_user

NAMESPACE = "t1."


def _specs(service: str) -> list[ConsumerSpec]:
    if service == "intake":
        return intake_consumers.consumer_specs(NAMESPACE)
    if service == "evaluation":
        return evaluation_consumers.consumer_specs(NAMESPACE, ZoneInfo("Asia/Shanghai"))
    # The handlers only close over the context; building the specs does not touch it.
    return dispatch_consumers.consumer_specs(NAMESPACE, cast(Any, None))


def _allows(plan: Plan, user: str, resource: str, name: str, operation: str) -> bool:
    def matches(g: Grant) -> bool:
        return g.name == name if g.pattern == "literal" else name.startswith(g.name)

    return any(
        g.user == user and g.resource == resource and g.operation == operation and matches(g) for g in plan.grants()
    )


@pytest.mark.parametrize("service", ["intake", "dispatch", "evaluation"])
def test_each_service_may_read_every_topic_and_group_it_consumes(service: str) -> None:
    plan = build_plan(["DEPT-UM"], namespace=NAMESPACE)
    user = service_user(NAMESPACE, service)
    for spec in _specs(service):
        assert _allows(plan, user, "group", spec.group, "read"), spec.group
        for topic in spec.topics:
            assert _allows(plan, user, "topic", topic, "read"), topic
            assert _allows(plan, user, "topic", topic, "describe_configs"), topic  # how long it keeps messages
    dead_letters = topics.named(NAMESPACE, topics.DEAD_LETTERS)
    assert _allows(plan, user, "topic", dead_letters, "write")
    assert _allows(plan, user, "topic", dead_letters, "describe_configs")


def test_only_dispatch_writes_unit_topics_and_each_unit_reads_only_its_own() -> None:
    plan = build_plan(["DEPT-UM", "DEPT-HC"], namespace=NAMESPACE)
    um_topic = topics.named(NAMESPACE, topics.unit_topic("DEPT-UM"))
    writers = {g.user for g in plan.grants() if g.operation == "write" and um_topic.startswith(g.name)}
    assert writers == {service_user(NAMESPACE, "dispatch")}
    readers = {
        g.user for g in plan.grants() if g.operation == "read" and g.resource == "topic" and um_topic.startswith(g.name)
    }
    assert readers == {"t1.unit-DEPT-UM"}
    assert _allows(plan, "t1.unit-DEPT-UM", "group", "t1.DEPT-UM.app", "read")
    assert not _allows(plan, "t1.unit-DEPT-UM", "group", "t1.DEPT-HC.app", "read")


def test_a_unit_code_that_could_widen_a_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match=r"DEPT\.UM"):
        build_plan(["DEPT.UM"])
