"""Housekeeping deletes what has served its purpose and nothing a reader still needs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import ValidationError
from sqlalchemy import event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.models import messaging
from services.intake.settings import IntakeSettings
from services.registry import SERVICES
from shared import topics
from shared.bus.base import Delivery, OutgoingMessage
from shared.bus.embedded import EmbeddedBus, messages
from shared.bus.kafka import KafkaBus
from shared.consumer import ConsumerSpec, dead_letter, redrive
from shared.db import create_engine, session_factory
from shared.events import CloudEvent, utcnow
from shared.migrate import upgrade_async
from shared.outbox import claim_event, claim_events
from shared.relay import OutboxRelay
from shared.retention import Housekeeping, Reader, prune_inbox, prune_outbox, refresh_statistics
from tests.helpers import eventually, running
from tests.shared.test_outbox import unpublished, write_events

DAYS_AGO_40 = timedelta(days=40)


def thing(n: int) -> CloudEvent:
    return CloudEvent(type="jiesu.test.thing.v1", source="/test", data={"n": n})


async def count(engine: AsyncEngine, table: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"))
    await bus.start()
    yield bus
    await bus.close()


async def age_bus(bus: EmbeddedBus, by: timedelta, *, positions: list[int] | None = None) -> None:
    """Make messages look appended ``by`` ago (all, or those at ``positions``)."""
    statement = update(messages).values(appended_at=utcnow() - by)
    if positions is not None:
        statement = statement.where(messages.c.position.in_(positions))
    async with bus.engine.begin() as conn:
        await conn.execute(statement)


async def topics_left(bus: EmbeddedBus) -> list[tuple[str, int]]:
    async with bus.engine.connect() as conn:
        rows = await conn.execute(select(messages.c.topic, messages.c.position).order_by(messages.c.position))
        return [(topic, position) for topic, position in rows]


async def test_published_outbox_rows_go_after_their_keep_and_unpublished_ones_never(
    engine: AsyncEngine, bus: EmbeddedBus
) -> None:
    await write_events(engine, 3)
    relay = OutboxRelay(engine=engine, tables=messaging, bus=bus, name="t")
    assert await relay.publish_once() == 3
    outbox = messaging.outbox
    async with engine.begin() as conn:  # two published long ago, one yesterday
        await conn.execute(update(outbox).where(outbox.c.seq <= 2).values(published_at=utcnow() - DAYS_AGO_40))
        await conn.execute(update(outbox).where(outbox.c.seq == 3).values(published_at=utcnow() - timedelta(days=1)))
    waiting = await write_events(engine, 2)  # never published, and written long ago
    async with engine.begin() as conn:
        await conn.execute(update(outbox).where(outbox.c.seq > 3).values(created_at=utcnow() - DAYS_AGO_40))

    assert await prune_outbox(engine, messaging, before=utcnow() - timedelta(days=7), batch=1) == 2
    assert await count(engine, outbox) == 3
    assert await unpublished(engine) == 2
    async with engine.connect() as conn:
        left = (await conn.execute(select(outbox.c.id).where(outbox.c.published_at.is_(None)))).scalars().all()
    assert sorted(left) == sorted(event.id for event in waiting)
    assert await relay.publish_once() == 2  # the relay goes on with what is still to publish


async def test_inbox_rows_go_after_their_keep_and_later_ones_still_stop_duplicates(engine: AsyncEngine) -> None:
    old, recent = [thing(n) for n in range(5)], [thing(n) for n in range(5, 8)]
    async with session_factory(engine)() as session, session.begin():
        await claim_events(session, messaging, consumer="dispatch", events=old[:3] + recent)
        await claim_events(session, messaging, consumer="evaluation", events=old[3:])
    inbox = messaging.inbox
    async with engine.begin() as conn:
        ids = [event.id for event in old]
        await conn.execute(update(inbox).where(inbox.c.event_id.in_(ids)).values(processed_at=utcnow() - DAYS_AGO_40))

    assert await prune_inbox(engine, messaging, before=utcnow() - timedelta(days=30), batch=2) == 5
    async with session_factory(engine)() as session, session.begin():
        for event in recent:
            assert not await claim_event(session, messaging, consumer="dispatch", event=event)
        assert await claim_event(session, messaging, consumer="evaluation", event=old[4])  # forgotten


async def test_the_embedded_bus_deletes_old_messages_every_group_has_read(bus: EmbeddedBus) -> None:
    await bus.publish([OutgoingMessage(topic="reports", key="k", event=thing(n)) for n in range(4)])  # 1-4
    await bus.publish([OutgoingMessage(topic="unread", key="k", event=thing(n)) for n in range(2)])  # 5-6
    await bus.publish([OutgoingMessage(topic="reports", key="k", event=thing(9))])  # 7, appended just now
    await age_bus(bus, DAYS_AGO_40, positions=[1, 2, 3, 4, 5, 6])
    ahead, behind = bus.subscribe(group="dispatch", topics=["reports"]), bus.subscribe(group="eval", topics=["reports"])
    for reader in (ahead, behind):
        await reader.start()
    await ahead.commit(await ahead.fetch(max_records=10))
    await behind.commit((await behind.fetch(max_records=10))[:2])  # a group that stopped after two

    assert await bus.prune(before=utcnow() - timedelta(days=7), batch=2) == 4
    # reports 1-2: every group read them; "unread" has no group, so age alone decides; 7 is new.
    assert await topics_left(bus) == [("reports", 3), ("reports", 4), ("reports", 7)]
    await behind.close()
    await behind.start()
    assert [d.offset for d in await behind.fetch(max_records=10)] == [3, 4, 7]  # its backlog is all there


async def test_dead_letters_stay_until_re_driven(bus: EmbeddedBus) -> None:
    spec = ConsumerSpec(group="dispatch", handlers={}, topics=["reports"], dead_letter_topic="jiesu.dead-letters")
    await bus.publish([OutgoingMessage(topic="reports", key="k", event=thing(1))])
    reader = bus.subscribe(group="dispatch", topics=["reports"])
    await reader.start()
    [delivery] = await reader.fetch()
    await dead_letter(bus, spec, delivery, error="a bug", attempts=5)
    await reader.commit([delivery])
    await age_bus(bus, DAYS_AGO_40)
    week = utcnow() - timedelta(days=7)

    assert await bus.prune(before=week, held_topics=["jiesu.dead-letters"]) == 1  # the read report only
    assert [topic for topic, _ in await topics_left(bus)] == ["jiesu.dead-letters"]
    assert await redrive(bus, dead_letter_topic="jiesu.dead-letters", reader="jiesu-redrive") == 1
    await age_bus(bus, DAYS_AGO_40)
    assert await bus.prune(before=week, held_topics=["jiesu.dead-letters"]) == 1  # the re-driven letter
    assert [topic for topic, _ in await topics_left(bus)] == ["reports"]  # its copy, unread by dispatch yet


async def test_the_embedded_floor_is_the_oldest_message_a_group_could_read_again(bus: EmbeddedBus) -> None:
    start = utcnow()
    assert await bus.redelivery_floor(groups=["dispatch"], dead_letter_topic="dl") >= start  # nothing kept
    await bus.publish([OutgoingMessage(topic="reports", key="k", event=thing(n)) for n in range(2)])
    await bus.publish([OutgoingMessage(topic="other", key="k", event=thing(3))])
    await age_bus(bus, timedelta(days=3), positions=[1])
    await age_bus(bus, timedelta(days=9), positions=[3])  # a topic dispatch does not read
    reader = bus.subscribe(group="dispatch", pattern="^rep")
    await reader.start()
    await reader.commit(await reader.fetch())
    floor = await bus.redelivery_floor(groups=["dispatch"], dead_letter_topic="dl")
    assert floor is not None and abs(floor - (utcnow() - timedelta(days=3))) < timedelta(minutes=1)

    made = CloudEvent(type="jiesu.test.thing.v1", source="/test", data={}, time=utcnow() - timedelta(days=12))
    spec = ConsumerSpec(group="eval", handlers={}, topics=["x"], dead_letter_topic="dl")
    letter = Delivery(topic="x", partition=0, offset=1, key="k", event=made)  # set aside long after it was made
    await dead_letter(bus, spec, letter, error="a bug", attempts=5)
    floor = await bus.redelivery_floor(groups=["dispatch"], dead_letter_topic="dl")
    assert floor == made.time


async def test_kafka_floor_comes_from_the_topics_retention(kafka_bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    hour, ten_minutes = 3_600_000, 600_000
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(f"{prefix}reports", 1, 1, topic_configs={"retention.ms": str(hour), "segment.ms": "600000"}),
                NewTopic(f"{prefix}cases", 1, 1, topic_configs={"retention.ms": str(3 * hour), "segment.ms": "600000"}),
                NewTopic(f"{prefix}dl", 1, 1, topic_configs={"retention.ms": str(2 * hour), "segment.ms": "600000"}),
                NewTopic(f"{prefix}kept", 1, 1, topic_configs={"retention.ms": "-1"}),
                NewTopic(f"{prefix}latest", 1, 1, topic_configs={"cleanup.policy": "compact"}),
            ]
        )
    finally:
        await admin.close()
    bus = KafkaBus(kafka_bootstrap, client_id="retention-test")
    start = utcnow()
    floor = await bus.redelivery_floor(
        topics=[f"{prefix}reports"], patterns=[f"^{prefix}ca"], dead_letter_topic=f"{prefix}dl"
    )
    # the longest-lived topic read (cases: 3 h + a 10-minute segment) and the dead letters' own 2 h + 10 min
    lives = timedelta(milliseconds=3 * hour + ten_minutes + 2 * hour + ten_minutes)
    assert floor is not None and start - lives - timedelta(seconds=5) <= floor <= utcnow() - lives
    for kept in ("kept", "latest"):
        assert await bus.redelivery_floor(topics=[f"{prefix}{kept}"], dead_letter_topic=f"{prefix}dl") is None


async def test_the_inbox_outlives_what_the_bus_can_deliver_again(engine: AsyncEngine, bus: EmbeddedBus) -> None:
    """Replaying a topic from its first offset after housekeeping still finds every event in the inbox."""
    applied: list[int] = []

    async def apply(session: object, event: CloudEvent) -> None:
        applied.append(event.data["n"])

    spec = ConsumerSpec(group="dispatch", handlers={"jiesu.test.thing.v1": apply}, topics=["reports"])
    sessions = session_factory(engine)
    await bus.publish([OutgoingMessage(topic="reports", key="k", event=thing(n)) for n in range(3)])

    async def consume() -> None:
        reader = bus.subscribe(group="dispatch", topics=["reports"])
        await reader.start()
        found = await reader.fetch(max_records=10)
        async with sessions() as session, session.begin():
            for event in [d.event for d in found]:
                if await claim_event(session, messaging, consumer=spec.group, event=event):
                    await spec.handlers[event.type](session, event)
        await reader.commit(found)
        await reader.close()

    await consume()
    assert applied == [0, 1, 2]
    await age_bus(bus, DAYS_AGO_40)
    inbox = messaging.inbox
    async with engine.begin() as conn:  # applied a second after each was published
        await conn.execute(update(inbox).values(processed_at=utcnow() - DAYS_AGO_40 + timedelta(seconds=1)))
    keeping = Housekeeping(
        name="dispatch",
        engine=engine,
        tables=messaging,
        bus=bus,
        readers=[Reader("dispatch", ("reports",))],
        dead_letter_topic="jiesu.dead-letters",
        keep_published=timedelta(days=7),
        keep_inbox=timedelta(days=30),
        keep_bus=None,  # the bus keeps every message: the inbox must too, however old
        every=600,
    )
    assert (await keeping.run_once()).inbox == 0
    async with bus.engine.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM bus_offsets")  # replay from the first offset
    await consume()
    assert applied == [0, 1, 2]  # nothing applied twice

    keeping.keep_bus = timedelta(days=7)  # now the bus lets them go, and then the inbox may too
    pruned = await keeping.run_once()
    assert (pruned.bus, pruned.inbox) == (3, 0)  # the inbox still counted with the messages the run began with
    pruned = await keeping.run_once()
    assert (pruned.bus, pruned.inbox) == (0, 3)
    assert keeping.deleted == {"outbox": 0, "inbox": 3, "bus": 3}


async def test_instances_of_a_service_take_turns(pg_url: str, bus: EmbeddedBus) -> None:
    engine = create_engine(pg_url)
    try:
        common = {"engine": engine, "tables": messaging, "bus": bus, "readers": [], "dead_letter_topic": "dl"}
        spans = {"keep_published": None, "keep_inbox": None, "keep_bus": None, "every": 600}
        first, second = Housekeeping(name="intake", **common, **spans), Housekeeping(name="intake", **common, **spans)
        async with first._turn() as mine, second._turn() as theirs:
            assert (mine, theirs) == (True, False)
        async with second._turn() as theirs:
            assert theirs  # given back when the first run ended
    finally:
        await engine.dispose()


async def test_statistics_are_gathered_off_the_event_loop_and_sizes_read_without_a_scan(tmp_path: Path) -> None:
    # ANALYZE reads every entry of every index (0.2-0.4 s for a dispatch database of 57,000 cases): on the event
    # loop it would stop the whole service for that long. Telling whether a table doubled must not read it whole.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'big.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE big (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)"))
            await conn.execute(text("CREATE INDEX ix_big_a ON big (a)"))
            await conn.execute(text("CREATE INDEX ix_big_b ON big (b)"))
            rows = [{"a": str(n % 100), "b": n % 7} for n in range(100_000)]
            await conn.execute(text("INSERT INTO big (a, b) VALUES (:a, :b)"), rows)
        steps: dict[str, int] = {}  # thousands of SQLite instructions, by the statement that ran them
        running: list[str] = [""]
        analyzed_on: set[int] = set()

        def count() -> int:
            steps[running[0]] = steps.get(running[0], 0) + 1
            return 0

        def trace(statement: str) -> None:
            running[0] = statement
            if statement.startswith("ANALYZE"):
                analyzed_on.add(threading.get_ident())

        def watched(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.driver_connection._conn.set_progress_handler(count, 1000)
            dbapi_connection.driver_connection._conn.set_trace_callback(trace)

        event.listen(engine.sync_engine, "connect", watched)
        await engine.dispose()  # connections from here on are watched
        assert await refresh_statistics(engine) == ["big"]
        assert analyzed_on and threading.get_ident() not in analyzed_on, "ANALYZE ran on the event loop's thread"
        besides = sum(n for statement, n in steps.items() if not statement.startswith("ANALYZE"))
        # A scan of the 100,000 rows is some 700 calls; reading the ends of the rowid b-tree, none or one.
        assert besides < 20, f"{besides * 1000} instructions to tell the tables' sizes: {steps}"
        async with engine.connect() as conn:
            stats = dict((await conn.execute(text("SELECT idx, stat FROM sqlite_stat1"))).all())
        assert stats == {"ix_big_a": "100000 1000", "ix_big_b": "100000 14286"}, "exact statistics, every row read"
        assert await refresh_statistics(engine) == [], "the same size: not gathered again"
    finally:
        await engine.dispose()


def test_keep_settings_refuse_negative_spans() -> None:
    with pytest.raises(ValidationError, match="keep_inbox_days"):
        IntakeSettings(keep_inbox_days=-1)


async def test_a_running_service_does_its_housekeeping_on_schedule(tmp_path: Path) -> None:
    spec = SERVICES["intake"]
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    await upgrade_async(script_location=spec.migrations, database_url=url)
    settings = spec.make_settings(
        database_url=url,
        embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}",
        relay=True,
        housekeeping_seconds=0.2,
        keep_published_days=1 / 86_400,  # a second
    )
    app = spec.create_app(settings)
    async with running(app) as client:
        body = {"source": "hotline", "external_id": "h-1", "content": "路灯坏了不亮"}
        assert (await client.post("/v1/reports", json=body)).status_code == 201
        line = 'jiesu_housekeeping_deleted_total{service="intake",table="outbox"} 1.0'

        async def pruned() -> bool:
            return line in (await client.get("/metrics")).text

        await eventually(pruned, timeout=15, what="the published report event to be deleted")
        assert await count(app.state.runtime.engine, messaging.outbox) == 0
        assert app.state.runtime.housekeeping.runs >= 2


class UndescribableBus:
    """Stands in for a broker that refuses to say how long its topics keep messages (no DESCRIBE_CONFIGS)."""

    async def redelivery_floor(self, **_: object) -> None:
        raise RuntimeError("cannot read the configuration of topic jiesu.intake.reports (Topic authorization failed)")


async def test_without_the_bus_floor_the_inbox_stays_and_the_rest_goes_on(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await write_events(engine, 2)
    async with session_factory(engine)() as session, session.begin():
        await claim_events(session, messaging, consumer="dispatch", events=[thing(1)])
    async with engine.begin() as conn:
        await conn.execute(update(messaging.outbox).values(published_at=utcnow() - DAYS_AGO_40))
        await conn.execute(update(messaging.inbox).values(processed_at=utcnow() - DAYS_AGO_40))
    keeping = Housekeeping(
        name="intake",
        engine=engine,
        tables=messaging,
        bus=UndescribableBus(),  # type: ignore[arg-type]
        readers=[Reader("intake-status", ("jiesu.dispatch.cases",))],
        dead_letter_topic="jiesu.dead-letters",
        keep_published=timedelta(days=7),
        keep_inbox=timedelta(days=30),
        keep_bus=timedelta(days=7),
        every=600,
    )
    pruned = await keeping.run_once()
    assert (pruned.outbox, pruned.inbox) == (2, 0)
    assert await count(engine, messaging.inbox) == 1
    assert "intake keeps its inbox this time" in caplog.text and "Topic authorization failed" in caplog.text


async def test_dead_letters_are_kept_a_month_on_kafka_and_the_inbox_counts_with_it(kafka_bootstrap: str) -> None:
    """The broker keeps ordinary messages a week; a dead letter waits for a fix, so its topic keeps them 30 days."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    bus = KafkaBus(kafka_bootstrap, client_id="retention-test")
    dead_letters, reports = f"{prefix}{topics.DEAD_LETTERS}", f"{prefix}{topics.REPORTS}"
    await bus.ensure_topics([dead_letters, reports])
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        lifetimes = await bus._lifetimes(admin, [dead_letters, reports])
    finally:
        await admin.close()
    week = timedelta(days=7)  # the broker's retention and its default segment age
    assert lifetimes == {dead_letters: timedelta(days=30) + week, reports: week + week}
    floor = await bus.redelivery_floor(topics=[reports], dead_letter_topic=dead_letters)
    assert floor is not None and abs(floor - (utcnow() - timedelta(days=51))) < timedelta(minutes=1)
