#!/usr/bin/env python3
"""Smoke test of a Kafka broker with the client features the services rely on.

Checks, against a running broker:
  1. AIOKafkaAdminClient.create_topics (and that the topic shows up in metadata),
  2. AIOKafkaProducer(enable_idempotence=True, acks="all") sending a record
     with a key and headers,
  3. AIOKafkaConsumer with a group_id, enable_auto_commit=False and
     auto_offset_reset="earliest" reading the record back (key, value and
     headers intact), then commit() and reading the committed offset back,
  4. automatic topic creation on first produce (auto.create.topics.enable).

Usage:
    python scripts/kafka_smoke.py [--bootstrap HOST:PORT] [--timeout SECONDS]

The bootstrap address defaults to $JIESU_KAFKA_BOOTSTRAP_SERVERS, then
127.0.0.1:$JIESU_KAFKA_PORT (59092). Needs only aiokafka. Exits 0 on success
and 1 with a message on the first failed check. Each run uses new topics and a
new consumer group and deletes the topics afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from typing import Any

try:
    import aiokafka
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
except ImportError:  # pragma: no cover - environment problem, not a test failure
    sys.exit("kafka_smoke: aiokafka is not installed in this Python environment")


def _default_bootstrap() -> str:
    explicit = os.environ.get("JIESU_KAFKA_BOOTSTRAP_SERVERS")
    if explicit:
        return explicit
    return f"127.0.0.1:{os.environ.get('JIESU_KAFKA_PORT', '59092')}"


class SmokeFailure(Exception):
    pass


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[dict[str, Any]]:
    described = await admin.describe_topics([topic])
    return described[0].get("partitions", []) if described else []


def step(message: str) -> None:
    print(f"[kafka-smoke] {message}", flush=True)


async def run(bootstrap: str) -> None:
    run_id = uuid.uuid4().hex[:12]
    topic = f"jiesu-smoke-{run_id}"
    group = f"jiesu-smoke-{run_id}"
    key = f"key-{run_id}".encode()
    value = f'{{"smoke": "{run_id}"}}'.encode()
    headers = [("event-type", b"smoke.test"), ("event-id", run_id.encode())]

    step(f"aiokafka {aiokafka.__version__}, bootstrap {bootstrap}")

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        step(
            f"cluster {cluster.get('cluster_id')}, controller {cluster.get('controller_id')}, "
            f"brokers {[b['node_id'] for b in cluster.get('brokers', [])]}"
        )

        await admin.create_topics([NewTopic(name=topic, num_partitions=3, replication_factor=1)])
        topics = await admin.list_topics()
        if topic not in topics:
            raise SmokeFailure(f"create_topics returned but {topic} is not listed")
        step(f"create_topics ok: {topic} (3 partitions)")

        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=10000,
        )
        await producer.start()
        try:
            metadata = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
        finally:
            await producer.stop()
        step(f"idempotent producer (acks=all) ok: partition {metadata.partition}, offset {metadata.offset}")

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=10000,
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + 30
            record = None
            while record is None and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for candidate in records:
                        if candidate.key == key:
                            record = candidate
                            break
            if record is None:
                raise SmokeFailure("consumer did not receive the produced record within 30s")
            if record.value != value:
                raise SmokeFailure(f"value mismatch: {record.value!r} != {value!r}")
            if list(record.headers) != headers:
                raise SmokeFailure(f"headers mismatch: {record.headers!r} != {headers!r}")
            step(
                f"consumer group {group} ok: got key/value/headers back from partition "
                f"{record.partition} offset {record.offset}"
            )

            await consumer.commit()
            tp = TopicPartition(topic, record.partition)
            committed = await consumer.committed(tp)
            if committed != record.offset + 1:
                raise SmokeFailure(f"committed offset is {committed}, expected {record.offset + 1}")
            step(f"commit ok: committed offset {committed} for {tp.topic}[{tp.partition}]")
        finally:
            await consumer.stop()

        # Topics the services publish to may be created on first use.
        auto_topic = f"{topic}-auto"
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10000)
        await producer.start()
        try:
            await producer.send_and_wait(auto_topic, value=b"{}", key=key)
        finally:
            await producer.stop()
        step(f"auto-created topic ok: {auto_topic} ({len(await _partitions(admin, auto_topic))} partitions)")

        await admin.delete_topics([topic, auto_topic])
        step(f"delete_topics ok: {topic}, {auto_topic}")
    finally:
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=_default_bootstrap(), help="bootstrap servers (host:port)")
    parser.add_argument("--timeout", type=float, default=90.0, help="overall timeout in seconds")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(run(args.bootstrap), args.timeout))
    except SmokeFailure as exc:
        print(f"[kafka-smoke] FAILED: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"[kafka-smoke] FAILED: no result within {args.timeout:.0f}s", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"[kafka-smoke] FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    step(f"all checks passed in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
