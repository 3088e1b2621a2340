"""Report and event ids are UUIDv7: valid UUIDs whose order is the order they were made in."""

from __future__ import annotations

import os
import threading
import time
import uuid

from shared.events import CloudEvent
from shared.ids import random_bytes, time_ordered_id

# 2026-11-28T10:00:00.123Z
MOMENT_NS = 1_795_860_000_123_456_789


def test_an_id_is_a_version_7_uuid_carrying_its_millisecond() -> None:
    text = time_ordered_id(MOMENT_NS)
    parsed = uuid.UUID(text)
    assert str(parsed) == text  # the usual lower-case, hyphenated form
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == MOMENT_NS // 1_000_000


def test_ids_of_one_millisecond_differ_in_their_random_bits() -> None:
    made = [uuid.UUID(time_ordered_id(MOMENT_NS)) for _ in range(2000)]
    assert len({m.int for m in made}) == 2000
    # All 74 random bits are used: each one is set in some id and clear in another.
    random_mask = ((1 << 12) - 1) << 64 | ((1 << 62) - 1)
    ones = zero = 0
    for m in made:
        ones |= m.int & random_mask
        zero |= ~m.int & random_mask
    assert ones == random_mask and zero == random_mask


def test_ids_made_later_sort_later_as_text() -> None:
    earlier = [time_ordered_id(MOMENT_NS + n * 1_000_000) for n in range(0, 500, 5)]
    assert earlier == sorted(earlier)
    before = time_ordered_id()
    time.sleep(0.002)
    assert time_ordered_id() > before


def test_events_get_time_ordered_ids_unless_given_one() -> None:
    first = CloudEvent(type="t", source="s", data={})
    time.sleep(0.002)
    second = CloudEvent(type="t", source="s", data={})
    assert uuid.UUID(first.id).version == 7 and first.id < second.id
    assert CloudEvent(type="t", source="s", data={}, id="given").id == "given"


def test_random_bytes_never_repeat_across_threads_or_a_fork() -> None:
    drawn: list[bytes] = []

    def draw() -> None:
        drawn.extend(random_bytes(10) for _ in range(1000))  # more than one pool's worth per thread

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(drawn) == 4000 and len(set(drawn)) == 4000
    assert len(random_bytes(10_000)) == 10_000  # more than a pool at once

    random_bytes(16)  # the pool is warm: a forked child would inherit its next bytes
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(writer, random_bytes(16) + time_ordered_id().encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    with os.fdopen(reader, "rb") as pipe:
        from_child = pipe.read()
    assert len(from_child) == 16 + 36
    assert from_child[:16] != random_bytes(16)
    assert from_child[16:].decode() != time_ordered_id()
