"""Every event on Kafka is a CloudEvents 1.0 binary-mode message that the official SDK reads back."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from shared.bus.base import OutgoingMessage
from shared.bus.kafka import KafkaBus
from shared.events import CloudEvent


async def test_the_official_sdk_reads_our_kafka_messages(kafka_bootstrap: str, namespace: str) -> None:
    topic = f"{namespace}jiesu.dispatch.cases"
    bus = KafkaBus(kafka_bootstrap, client_id="sdk-test")
    await bus.ensure_topics([topic])
    sent = CloudEvent(
        type="jiesu.dispatch.case.dispatched.v1",
        source="/jiesu/dispatch",
        subject="case-1",
        data={"case_id": "case-1", "primary_unit": "DEPT-UM", "内容": "路灯不亮"},
    )
    await bus.publish([OutgoingMessage(topic=topic, key="case-1", event=sent)])
    await bus.close()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, group_id=f"{namespace}sdk", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    message = KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value or b"")
    read = from_binary_event(message)
    assert record.key == b"case-1"
    assert read.get_id() == sent.id
    assert read.get_type() == sent.type
    assert read.get_source() == sent.source
    assert read.get_subject() == "case-1"
    assert read.get_specversion() == "1.0"
    assert read.get_time() == sent.time
    assert read.get_data() == sent.data
