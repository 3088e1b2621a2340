"""Kafka with SASL/SCRAM and ACLs: each unit reads only its own topic, each service only what it needs."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from pydantic import ValidationError

from services.dispatch.settings import DispatchSettings
from shared import topics
from shared.bus.base import OutgoingMessage
from shared.bus.factory import create_bus
from shared.bus.kafka import KafkaBus
from shared.bus.kafka_security import KafkaSecurity
from shared.events import CloudEvent, utcnow
from tests.e2e.procs import ROOT, free_port

UNIT_A, UNIT_B = "DEPT-UM", "DEPT-HC"


@dataclass
class SecureKafka:
    """A SASL broker of this module's own, with jiesu's users and ACLs applied by ``jiesu kafka-acls``."""

    bootstrap: str
    passwords: dict[str, str]

    def login(self, user: str, password: str | None = None) -> KafkaSecurity:
        return KafkaSecurity("SASL_PLAINTEXT", username=user, password=password or self.passwords[user])


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    var = tmp_path_factory.mktemp("sasl-broker")
    port = free_port()
    env = {
        **os.environ,
        "JIESU_VAR": str(var),
        "JIESU_KAFKA_PORT": str(port),
        "JIESU_KAFKA_SECURITY": "sasl",
        "JIESU_KAFKA_ADMIN_PASSWORD": secrets.token_urlsafe(18),
    }
    started = _run(["bash", "scripts/kafka.sh", "start"], env)
    assert started.returncode == 0, f"kafka.sh start (sasl) failed:\n{started.stderr[-3000:]}"
    try:
        credentials = var / "credentials.json"
        jiesu = [sys.executable, "-m", "services.cli", "kafka-acls"]
        made = _run([*jiesu, "passwords", "--out", str(credentials)], env)
        assert made.returncode == 0, made.stderr
        assert credentials.stat().st_mode & 0o077 == 0, "the credentials file must be private to its owner"
        bootstrap = f"127.0.0.1:{port}"
        applied = _run([*jiesu, "apply", "--bootstrap", bootstrap, "--credentials", str(credentials)], env)
        assert applied.returncode == 0, f"jiesu kafka-acls apply failed:\n{applied.stderr[-3000:]}"
        yield SecureKafka(bootstrap, json.loads(credentials.read_text(encoding="utf-8")))
    finally:
        stopped = _run(["bash", "scripts/kafka.sh", "stop"], env)
        assert stopped.returncode == 0, stopped.stderr


@asynccontextmanager
async def consumer(
    kafka: SecureKafka, topic: str, *, group: str, security: KafkaSecurity
) -> AsyncIterator[AIOKafkaConsumer]:
    client = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10000,
        **security.client_options(),
    )
    try:
        await client.start()
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def producer(kafka: SecureKafka, security: KafkaSecurity) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, enable_idempotence=True, acks="all", **security.client_options()
    )
    try:
        await client.start()
        yield client
    finally:
        await client.stop()


async def _read(client: AIOKafkaConsumer, *, want: bytes) -> list[bytes]:
    """Everything read until ``want`` shows up (at most 20 s)."""
    seen: list[bytes] = []
    for _ in range(20):
        batches = await client.getmany(timeout_ms=1000)
        seen += [record.value or b"" for records in batches.values() for record in records]
        if want in seen:
            break
    return seen


async def test_a_unit_reads_work_that_dispatch_publishes_on_its_own_topic(secure_kafka: SecureKafka) -> None:
    settings = DispatchSettings(
        bus="kafka",
        kafka_bootstrap_servers=secure_kafka.bootstrap,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="jiesu-dispatch",
        kafka_password=secure_kafka.passwords["jiesu-dispatch"],
    )
    bus = create_bus(settings, client_id="jiesu-dispatch-test")
    event = CloudEvent(
        type=topics.ASSIGNMENT_CREATED, source="/jiesu/dispatch", data={"case_id": "C1", "role": "primary"}
    )
    try:
        await bus.publish([OutgoingMessage(topic=topics.unit_topic(UNIT_A), key="C1", event=event)])
    finally:
        await bus.close()
    unit = secure_kafka.login(f"unit-{UNIT_A}")
    async with consumer(secure_kafka, topics.unit_topic(UNIT_A), group=f"{UNIT_A}.app", security=unit) as mine:
        seen = await _read(mine, want=event.body())
        assert event.body() in seen
        await mine.commit()  # the unit's own group may keep its offsets


async def test_a_unit_is_refused_another_units_topic(secure_kafka: SecureKafka) -> None:
    unit_a = secure_kafka.login(f"unit-{UNIT_A}")
    with pytest.raises(TopicAuthorizationFailedError):
        async with consumer(secure_kafka, topics.unit_topic(UNIT_B), group=f"{UNIT_A}.app", security=unit_a) as other:
            await other.getmany(timeout_ms=5000)


async def test_a_unit_is_refused_another_units_consumer_group(secure_kafka: SecureKafka) -> None:
    unit_a = secure_kafka.login(f"unit-{UNIT_A}")
    with pytest.raises(GroupAuthorizationFailedError):
        async with consumer(secure_kafka, topics.unit_topic(UNIT_A), group=f"{UNIT_B}.app", security=unit_a) as other:
            await other.getmany(timeout_ms=5000)


async def test_a_unit_cannot_put_work_on_a_unit_topic(secure_kafka: SecureKafka) -> None:
    async with producer(secure_kafka, secure_kafka.login(f"unit-{UNIT_A}")) as unit_a:
        with pytest.raises(TopicAuthorizationFailedError):
            await unit_a.send_and_wait(topics.unit_topic(UNIT_B), b"forged assignment")


async def test_a_unit_may_send_its_actions_on_the_responses_topic(secure_kafka: SecureKafka) -> None:
    action = json.dumps({"case_id": "C1", "action": "sign", "unit_code": UNIT_A, "n": uuid.uuid4().hex}).encode()
    async with producer(secure_kafka, secure_kafka.login(f"unit-{UNIT_A}")) as unit_a:
        await unit_a.send_and_wait(topics.RESPONSES, action)
    dispatch = secure_kafka.login("jiesu-dispatch")
    async with consumer(secure_kafka, topics.RESPONSES, group="jiesu-dispatch-responses", security=dispatch) as reader:
        assert action in await _read(reader, want=action)


async def test_a_service_writes_only_its_own_topics(secure_kafka: SecureKafka) -> None:
    async with producer(secure_kafka, secure_kafka.login("jiesu-dispatch")) as dispatch:
        with pytest.raises(TopicAuthorizationFailedError):
            await dispatch.send_and_wait(topics.REPORTS, b"a report intake never received")
    async with producer(secure_kafka, secure_kafka.login("jiesu-evaluation")) as evaluation:
        with pytest.raises(TopicAuthorizationFailedError):
            await evaluation.send_and_wait(topics.unit_topic(UNIT_A), b"work from the wrong service")


async def test_a_wrong_password_is_refused(secure_kafka: SecureKafka) -> None:
    wrong = secure_kafka.login(f"unit-{UNIT_A}", password="not-" + secure_kafka.passwords[f"unit-{UNIT_A}"])
    with pytest.raises(KafkaConnectionError):
        async with consumer(secure_kafka, topics.unit_topic(UNIT_A), group=f"{UNIT_A}.app", security=wrong):
            pass


async def test_a_client_without_credentials_is_refused(secure_kafka: SecureKafka) -> None:
    with pytest.raises(KafkaConnectionError):
        async with producer(secure_kafka, KafkaSecurity()) as anonymous:
            await anonymous.send_and_wait(topics.unit_topic(UNIT_A), b"anonymous")


def test_production_settings_refuse_a_placeholder_kafka_password() -> None:
    with pytest.raises(ValidationError, match="kafka_password is a placeholder"):
        DispatchSettings(
            environment="production",
            database_url="postgresql+asyncpg://jiesu@db/jiesu_dispatch",
            caller_key_secret="a-real-secret",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_username="jiesu-dispatch",
            kafka_password="CHANGE-ME",
        )


@pytest.mark.parametrize("service", ["intake", "dispatch", "evaluation"])
async def test_a_service_may_read_how_long_its_topics_keep_messages(secure_kafka: SecureKafka, service: str) -> None:
    """Housekeeping keeps the inbox as long as the broker could deliver an event again: it reads topic configs."""
    bus = KafkaBus(
        secure_kafka.bootstrap, client_id=f"jiesu-{service}", security=secure_kafka.login(f"jiesu-{service}")
    )
    reads = {
        "intake": [topics.CASES],
        "dispatch": [topics.REPORTS, topics.VERDICTS, topics.RESPONSES],
        "evaluation": [topics.CASES, topics.REPORTS],
    }[service]
    floor = await bus.redelivery_floor(topics=reads, dead_letter_topic=topics.DEAD_LETTERS)
    # deploy/kafka/server.properties: 7 days' retention and the default 7-day segments, on each side
    assert floor is not None and floor < utcnow() - timedelta(days=27)
