"""Who may do what on jiesu's Kafka cluster: each principal and its ACLs, derived from the topics and the units."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from shared import topics

Resource = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["read", "write", "create", "describe", "describe_configs"]

SERVICES = ("intake", "dispatch", "evaluation")
_UNIT_CODE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: the principal may do ``operation`` on a resource (a literal name or a name prefix)."""

    user: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def describe(self) -> str:
        """One line for a person: ``User:jiesu-dispatch  WRITE  topic jiesu.dispatch.unit.* ``."""
        shown = f"{self.name}*" if self.pattern == "prefixed" else self.name
        return f"User:{self.user:<28} {self.operation.upper():<16} {self.resource:<6} {shown}"


@dataclass(frozen=True)
class Principal:
    """A Kafka user (SCRAM) and what it is for."""

    user: str
    role: str
    grants: tuple[Grant, ...] = field(default=())


@dataclass(frozen=True)
class Plan:
    """Every principal of a deployment with its grants, and the topics that must exist."""

    namespace: str
    principals: tuple[Principal, ...]
    topics: tuple[str, ...]

    def grants(self) -> list[Grant]:
        """All grants, sorted."""
        return sorted(g for p in self.principals for g in p.grants)

    def user(self, name: str) -> Principal:
        """The principal called ``name``."""
        for principal in self.principals:
            if principal.user == name:
                return principal
        raise KeyError(name)


def service_user(namespace: str, service: str) -> str:
    """The principal a jiesu service connects as (``jiesu-dispatch``)."""
    return f"{namespace}jiesu-{service}"


def unit_user(namespace: str, unit_code: str) -> str:
    """The principal a unit's (department's) app connects as (``unit-DEPT-UM``)."""
    return f"{namespace}unit-{unit_code}"


def unit_group_prefix(namespace: str, unit_code: str) -> str:
    """The consumer groups a unit may use start with this (``DEPT-UM.``, e.g. ``DEPT-UM.app``)."""
    return f"{namespace}{unit_code}."


def _topic(user: str, name: str, *operations: Operation, pattern: Pattern = "literal") -> list[Grant]:
    return [Grant(user, "topic", name, pattern, op) for op in operations]


def _service(namespace: str, service: str, *, writes: Iterable[str], reads: Iterable[str]) -> Principal:
    user = service_user(namespace, service)
    grants: list[Grant] = []
    for topic in writes:
        # CREATE: the bus creates a topic before its first message when it does not exist yet.
        grants += _topic(user, topics.named(namespace, topic), "write", "describe", "create")
    # DESCRIBE_CONFIGS: housekeeping reads how long the topics it reads (and the dead letters, which a re-drive
    # publishes again) keep messages, to keep the inbox at least that long (shared/retention.py).
    for topic in reads:
        grants += _topic(user, topics.named(namespace, topic), "read", "describe", "describe_configs")
    grants += _topic(user, topics.named(namespace, topics.DEAD_LETTERS), "describe_configs")
    # Every consumer group of a service is named jiesu-<service>-<purpose> (services/*/consumers.py).
    grants.append(Grant(user, "group", f"{namespace}jiesu-{service}-", "prefixed", "read"))
    return Principal(user, f"the {service} service (API, consumers and outbox relay)", tuple(grants))


def build_plan(unit_codes: Sequence[str], *, namespace: str = "") -> Plan:
    """The principals and ACLs of a deployment with these units (idempotent producers need only WRITE)."""
    bad = [code for code in unit_codes if not _UNIT_CODE.fullmatch(code)]
    if bad:
        raise ValueError(f"unit codes may hold only letters, digits, '-' and '_': {', '.join(bad)}")
    unit_topic_prefix = topics.named(namespace, topics.UNIT_PREFIX)
    intake = _service(namespace, "intake", writes=[topics.REPORTS, topics.DEAD_LETTERS], reads=[topics.CASES])
    dispatch = _service(
        namespace,
        "dispatch",
        writes=[topics.CASES, topics.DEAD_LETTERS],
        reads=[topics.REPORTS, topics.VERDICTS, topics.RESPONSES],
    )
    dispatch = Principal(
        dispatch.user,
        dispatch.role,
        dispatch.grants
        + tuple(_topic(dispatch.user, unit_topic_prefix, "write", "describe", "create", pattern="prefixed")),
    )
    evaluation = _service(
        namespace, "evaluation", writes=[topics.VERDICTS, topics.DEAD_LETTERS], reads=[topics.CASES, topics.REPORTS]
    )
    units = []
    for code in sorted(set(unit_codes)):
        user = unit_user(namespace, code)
        grants = [
            *_topic(user, topics.named(namespace, topics.unit_topic(code)), "read", "describe"),
            Grant(user, "group", unit_group_prefix(namespace, code), "prefixed", "read"),
            # Department apps may send their actions on the responses topic instead of calling REST.
            *_topic(user, topics.named(namespace, topics.RESPONSES), "write", "describe"),
        ]
        units.append(Principal(user, f"the app of unit {code}", tuple(grants)))
    shared_topics = [topics.REPORTS, topics.CASES, topics.VERDICTS, topics.RESPONSES, topics.DEAD_LETTERS]
    every_topic = [topics.named(namespace, t) for t in shared_topics]
    every_topic += [topics.named(namespace, topics.unit_topic(code)) for code in sorted(set(unit_codes))]
    return Plan(namespace, (intake, dispatch, evaluation, *units), tuple(every_topic))
