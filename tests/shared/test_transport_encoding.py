"""The transport's shortcuts change nothing on the wire or in the inbox: relayed bytes, decoding, duplicate claims."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.models import messaging
from shared.bus.base import OutgoingMessage
from shared.bus.embedded import EmbeddedBus, messages
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.outbox import add_events, claim_event, claim_events
from shared.relay import OutboxRelay


def awkward_events() -> list[CloudEvent]:
    """Events whose data exercises the JSON encoding: non-ASCII text, floats, nesting, a datetime, no subject."""
    return [
        CloudEvent(
            type="jiesu.test.thing.v1",
            source="/test",
            subject=f"case-{n}",
            data={
                "n": n,
                "text": '井盖缺失 \u2028 "quoted" \\ tab\t',
                "ratio": 0.1 + n / 3,
                "big": 2**70,
                "nested": {"list": [1, None, True, {"k": "v"}], "empty": {}},
                "when": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            },
        )
        for n in range(5)
    ] + [CloudEvent(type="jiesu.test.other.v1", source="/test", data={})]


async def bus_rows(bus: EmbeddedBus, topic: str) -> list[tuple[str | None, str, bytes]]:
    async with bus.engine.connect() as conn:
        rows = await conn.execute(
            select(messages.c.key, messages.c.headers, messages.c.payload)
            .where(messages.c.topic == topic)
            .order_by(messages.c.position)
        )
        return [(key, headers, bytes(payload)) for key, headers, payload in rows]


async def test_relayed_messages_are_byte_identical_to_encoding_the_event_afresh(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    events = awkward_events()
    async with session_factory(engine)() as session, session.begin():
        await add_events(session, messaging, [("things", "thing", e.subject or e.id, e) for e in events])
    bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"))
    await bus.start()
    try:
        relay = OutboxRelay(engine=engine, tables=messaging, bus=bus, name="test")
        assert await relay.publish_once() == len(events)
        # The plain path: each event encoded from its data, as any other publisher does.
        await bus.publish([OutgoingMessage(topic="plain", key=e.subject or e.id, event=e) for e in events])
        relayed, plain = await bus_rows(bus, "things"), await bus_rows(bus, "plain")
        assert relayed == plain
        reader = bus.subscribe(group="g", topics=["things"])
        await reader.start()
        got = await reader.fetch(max_records=100, timeout=1.0)
        await reader.close()
    finally:
        if relay.watch is not None:
            await relay.watch.close()
        await bus.close()
    assert [d.event.id for d in got] == [e.id for e in events]
    assert [d.event.body() for d in got] == [e.body() for e in events]
    assert [d.event.headers() for d in got] == [e.headers() for e in events]


def test_decoding_from_text_attributes_matches_decoding_from_headers() -> None:
    for event in awkward_events():
        from_headers = CloudEvent.from_binary(event.headers(), event.body())
        stored = json.loads(json.dumps([[k, v] for k, v in event.attributes()]))
        assert CloudEvent.from_attributes(dict(stored), event.body()) == from_headers
        assert from_headers.headers() == event.headers()


def test_a_message_value_is_the_given_body_or_the_event_encoded() -> None:
    event = awkward_events()[0]
    assert OutgoingMessage(topic="t", key="k", event=event).value() == event.body()
    assert OutgoingMessage(topic="t", key="k", event=event, body=b'{"x":1}').value() == b'{"x":1}'


async def test_claims_return_only_events_not_handled_before(engine: AsyncEngine) -> None:
    events = [CloudEvent(type="jiesu.test.thing.v1", source="/test", data={"n": n}) for n in range(6)]
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        first = await claim_events(session, messaging, consumer="a", events=events[:3] + events[:1])
        assert await claim_event(session, messaging, consumer="a", event=events[3])
        assert not await claim_event(session, messaging, consumer="a", event=events[0])
    assert first == {e.id for e in events[:3]}
    async with sessions() as session, session.begin():
        again = await claim_events(session, messaging, consumer="a", events=events)
        other = await claim_events(session, messaging, consumer="b", events=events[:2])
    assert again == {e.id for e in events[4:]}
    assert other == {e.id for e in events[:2]}
    async with sessions() as session, session.begin():
        assert await claim_events(session, messaging, consumer="a", events=events) == set()
        assert await claim_events(session, messaging, consumer="a", events=[]) == set()
