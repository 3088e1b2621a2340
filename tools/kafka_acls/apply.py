"""Put a plan on a cluster: create the topics, set the SCRAM passwords, add the ACLs (all idempotent)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.protocol.admin import DescribeAclsRequest

from shared import topics
from shared.bus.kafka_security import KafkaSecurity
from tools.kafka_acls.plan import Grant, Plan
from tools.kafka_acls.wire import ALLOW, OPERATION, PATTERN_TYPE, RESOURCE_TYPE, CreateAcls, UpsertScramCredentials

_BATCH = 500  # ACLs per CreateAcls request


class KafkaAdminError(RuntimeError):
    """The broker refused part of the plan."""


@dataclass(frozen=True)
class Applied:
    """What ``apply_plan`` did."""

    topics_created: list[str]
    users_set: list[str]
    users_without_password: list[str]
    acls: int


async def apply_plan(
    plan: Plan,
    *,
    bootstrap_servers: str,
    admin: KafkaSecurity,
    passwords: Mapping[str, str],
    partitions: int = 3,
    replication_factor: int = 1,
    settle_timeout: float = 30.0,
) -> Applied:
    """Create what the plan needs as the admin principal; users without a password keep their current one."""
    known = {p.user for p in plan.principals}
    unknown = sorted(set(passwords) - known)
    if unknown:
        raise KafkaAdminError(f"passwords given for users the plan does not have: {', '.join(unknown)}")
    options = admin.client_options()
    admin_client = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="jiesu-kafka-acls", **options)
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, client_id="jiesu-kafka-acls", **options)
    try:
        await admin_client.start()
        existing = set(await admin_client.list_topics())
        missing = [t for t in plan.topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin_client.create_topics(
                    [
                        NewTopic(
                            t,
                            num_partitions=partitions,
                            replication_factor=replication_factor,
                            topic_configs=topics.creation_configs(t),
                        )
                        for t in missing
                    ]
                )
        await client.bootstrap()
        node = client.get_random_node()
        if passwords:
            answer = await client.send(node, UpsertScramCredentials(dict(passwords)))
            refused = [f"{user}: {message or code}" for user, code, message, _ in answer.results if code]
            if refused:
                raise KafkaAdminError("the broker refused SCRAM credentials: " + "; ".join(refused))
        grants = plan.grants()
        for start in range(0, len(grants), _BATCH):
            answer = await client.send(node, CreateAcls(grants[start : start + _BATCH]))
            refused = [
                f"{grant.describe()}: {message or code}"
                for grant, (code, message) in zip(grants[start : start + _BATCH], answer.results, strict=True)
                if code
            ]
            if refused:
                raise KafkaAdminError("the broker refused ACLs: " + "; ".join(refused))
        if grants:
            await _in_force(client, node, grants[-1], timeout=settle_timeout)
    finally:
        await client.close()
        await admin_client.close()
    return Applied(
        topics_created=missing,
        users_set=sorted(passwords),
        users_without_password=sorted(known - set(passwords)),
        acls=len(grants),
    )


async def _in_force(client: AIOKafkaClient, node: int, grant: Grant, *, timeout: float) -> None:
    """Wait until the broker enforces the last ACL written (and so every credential and ACL written before it)."""
    # The controller accepts changes before the broker has applied them from the metadata log; a client that
    # signs in a moment after apply_plan returned must already find its password and ACLs there.
    deadline = time.monotonic() + timeout
    request = DescribeAclsRequest(
        RESOURCE_TYPE[grant.resource],
        grant.name,
        PATTERN_TYPE[grant.pattern],
        f"User:{grant.user}",
        "*",
        OPERATION[grant.operation],
        ALLOW,
    )
    while True:
        answer = await client.send(node, request)
        if answer.error_code == 0 and answer.resources:
            return
        if time.monotonic() > deadline:
            raise KafkaAdminError(f"the broker did not apply the ACLs within {timeout:.0f} s")
        await asyncio.sleep(0.1)
