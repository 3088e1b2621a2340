"""Kafka transport: idempotent producer (acks=all); consumers commit only after their own transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from shared import topics as topics_module
from shared.bus.base import Delivery, OutgoingMessage
from shared.bus.kafka_security import KafkaSecurity
from shared.events import CloudEvent, EnvelopeError, utcnow

log = logging.getLogger("jiesu.kafka")


class KafkaBus:
    """A bus on an Apache Kafka cluster; CloudEvents in binary mode, key = case id."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "jiesu",
        partitions: int = 3,
        publish_timeout: float = 15.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.security = security or KafkaSecurity()
        self.client_id = client_id
        self.partitions = partitions
        self.publish_timeout = publish_timeout
        self.producers_abandoned = 0
        self._producer: AIOKafkaProducer | None = None
        self._known_topics: set[str] = set()

    async def start(self) -> None:
        pass

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                **self.security.client_options(),
                client_id=self.client_id,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                # A relay batch of 500 events is ~300 kB: bigger record batches mean fewer requests to send and ack.
                max_batch_size=262144,
                request_timeout_ms=15000,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                # Stopping flushes what is in flight; with the broker gone that could wait forever.
                await asyncio.wait_for(producer.stop(), timeout=10)
            except TimeoutError:
                log.warning(
                    "Kafka producer did not stop in 10 s (broker unreachable?); unsent messages stay in the outbox"
                )
                await _abandon(producer)

    async def publish(self, batch: Sequence[OutgoingMessage]) -> None:
        """Publish and wait for every acknowledgement; past ``publish_timeout`` drop the producer and raise."""
        if not batch:
            return
        acks: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.publish_timeout):
                await self._ensure_known({message.topic for message in batch})
                producer = await self._producer_started()
                for message in batch:
                    acks.append(
                        await producer.send(
                            message.topic,
                            value=message.value(),
                            key=message.key.encode(),
                            headers=message.event.headers(),
                        )
                    )
                await asyncio.gather(*acks)
        except BaseException:
            # A producer that could not deliver keeps every unacknowledged batch and retries it for as long as the
            # broker is away, so each failed attempt would add one more batch to its memory. The caller still holds
            # these events (the outbox) and will publish them again: drop the producer with its buffer, start anew.
            await self.abandon_producer()
            for ack in acks:  # nobody waits for these any more
                ack.cancel()
            raise

    async def abandon_producer(self) -> None:
        """Drop the producer and everything it still buffers; the next publish starts a fresh one."""
        if self._producer is not None:
            producer, self._producer = self._producer, None
            self.producers_abandoned += 1
            await _abandon(producer)

    def buffered_messages(self) -> int:
        """How many messages the current producer holds unacknowledged (0 without a producer)."""
        if self._producer is None:
            return 0
        accumulator = self._producer._message_accumulator
        queued = [batch for batches in accumulator._batches.values() for batch in batches]
        return sum(int(batch.record_count) for batch in [*queued, *accumulator._pending_batches])

    async def _ensure_known(self, topics: set[str]) -> None:
        # Create topics before the first message, with this bus's partition count: a broker that auto-creates
        # them would use its own default (often one partition, which no consumer group can share).
        unknown = topics - self._known_topics
        if unknown:
            await self.ensure_topics(sorted(unknown))
            self._known_topics |= unknown

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[AIOKafkaAdminClient]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, client_id=self.client_id, **self.security.client_options()
        )
        try:
            await admin.start()
            yield admin
        finally:
            await admin.close()

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create topics that do not exist yet (brokers may also auto-create them)."""
        async with self._admin() as admin:
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                t,
                                num_partitions=self.partitions,
                                replication_factor=1,
                                topic_configs=topics_module.creation_configs(t),
                            )
                            for t in missing
                        ]
                    )

    async def redelivery_floor(
        self,
        *,
        groups: Sequence[str] = (),
        topics: Sequence[str] = (),
        patterns: Sequence[str] = (),
        dead_letter_topic: str,
    ) -> datetime | None:
        """The earliest time at which anything the broker can still deliver on these topics was first published.

        Kafka deletes by age: a message goes once its whole log segment is older than the topic's `retention.ms`,
        so it can live `retention.ms` + `segment.ms`. A dead letter can be re-driven for as long as the dead-letter
        topic keeps it, and its event may have waited that long on its own topic before, so the two lifetimes add
        up. None when a topic keeps messages for ever (retention.ms -1 or compaction).
        """
        async with self._admin() as admin:
            existing = set(await admin.list_topics())
            read = sorted(t for t in existing if t in topics or any(re.search(p, t) for p in patterns))
            lifetimes = await self._lifetimes(
                admin, [*read, dead_letter_topic] if dead_letter_topic in existing else read
            )
        known: dict[str, timedelta] = {}
        for topic, span in lifetimes.items():
            if span is None:
                return None
            known[topic] = span
        letters = known.pop(dead_letter_topic, timedelta(0))
        longest = max(known.values(), default=timedelta(0))
        return utcnow() - longest - letters

    async def _lifetimes(self, admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, timedelta | None]:
        """How long each topic can keep a message (None: for ever)."""
        if not topics:
            return {}
        wanted = {"retention.ms": None, "segment.ms": None, "cleanup.policy": None}
        resources = [ConfigResource(ConfigResourceType.TOPIC, topic, dict(wanted)) for topic in topics]
        found: dict[str, timedelta | None] = {}
        for response in await admin.describe_configs(resources):
            for error_code, error_message, _kind, topic, entries in response.resources:
                if error_code:
                    raise RuntimeError(
                        f"cannot read the configuration of topic {topic} ({error_message or error_code}); "
                        "the service's principal needs DESCRIBE_CONFIGS on it (jiesu kafka-acls apply grants it)"
                    )
                config = {entry[0]: entry[1] for entry in entries}
                retention = int(config.get("retention.ms") or -1)
                if retention < 0 or "compact" in (config.get("cleanup.policy") or ""):
                    found[topic] = None
                else:
                    found[topic] = timedelta(milliseconds=retention + int(config.get("segment.ms") or 0))
        return found

    def subscribe(self, *, group: str, topics: Sequence[str] = (), pattern: str | None = None) -> KafkaSubscription:
        return KafkaSubscription(self, group=group, topics=tuple(topics), pattern=pattern)


class KafkaSubscription:
    """A Kafka consumer-group member that never auto-commits."""

    def __init__(self, bus: KafkaBus, *, group: str, topics: tuple[str, ...], pattern: str | None) -> None:
        if not topics and pattern is None:
            raise ValueError("subscribe to topics or a pattern")
        self.bus = bus
        self.group = group
        self.topics = topics
        self.pattern = pattern
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        if self.topics:
            await self.bus.ensure_topics(self.topics)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bus.bootstrap_servers,
            **self.bus.security.client_options(),
            client_id=self.bus.client_id,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            metadata_max_age_ms=5000,
        )
        if self.pattern is not None:
            consumer.subscribe(pattern=self.pattern)
        else:
            consumer.subscribe(list(self.topics))
        await consumer.start()
        self._consumer = consumer

    async def fetch(self, *, max_records: int = 200, timeout: float = 1.0) -> list[Delivery]:
        assert self._consumer is not None, "start() the subscription first"
        batches = await self._consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        found: list[Delivery] = []
        for tp, records in batches.items():
            for record in records:
                try:
                    event = CloudEvent.from_binary(list(record.headers or ()), record.value or b"")
                except EnvelopeError:
                    event = _unreadable(record)
                found.append(
                    Delivery(
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=record.offset,
                        key=record.key.decode() if record.key else None,
                        event=event,
                    )
                )
        return found

    async def commit(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries or self._consumer is None:
            return
        latest: dict[TopicPartition, int] = {}
        for d in deliveries:
            tp = TopicPartition(d.topic, d.partition)
            latest[tp] = max(latest.get(tp, -1), d.offset + 1)
        await self._consumer.commit(latest)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


async def _abandon(producer: AIOKafkaProducer) -> None:
    """Close a producer without flushing: what it still buffers is dropped instead of waiting for the broker."""
    # aiokafka has no public abort: stop() waits until every buffered batch is delivered, which never happens
    # while the broker is away. Stopping the sender task and the connections ourselves leaves the buffered
    # batches with nothing referring to them, so their memory goes with the producer.
    producer._closed = True
    try:
        await asyncio.wait_for(producer._sender.close(), timeout=5)
    except Exception as error:
        log.warning("abandoned Kafka producer's sender did not stop cleanly: %r", error)
    await producer.client.close()


def _unreadable(record: Any) -> CloudEvent:
    """Stand-in for a message without a valid envelope, so the consumer can record and skip it."""
    return CloudEvent(
        type="jiesu.bus.unreadable.v1",  # shared.consumer.UNREADABLE
        source=f"kafka:{record.topic}",
        id=f"{record.topic}:{record.partition}:{record.offset}",
        data={"topic": record.topic, "partition": record.partition, "offset": record.offset},
    )
