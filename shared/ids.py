"""Identifiers that sort by the time they were made: UUID version 7 (RFC 9562, section 5.7).

Reports and events are keyed by such ids in unique indexes (``reports.id``, ``outbox.id``, every consumer's inbox).
A random (version 4) id lands each new row on a random page of those indexes, so once an index outgrows the page
cache every insert reads a page and every commit writes one page per row and index; ids that grow with time land
together at the end of the index, whatever its size. They are ordinary UUIDs in the usual text form: 48 bits of
Unix milliseconds, the version and variant bits, and 74 random bits, so one cannot be guessed from another.
"""

from __future__ import annotations

import os
import threading
import time

_VERSION = 0x7 << 76
_VARIANT = 0x2 << 62
_RAND_B = (1 << 62) - 1  # 62 random bits after the variant


_POOL_BYTES = 4096
_generation = 0  # raised in a forked child, whose copy of every pool must not be used again


class _Pool(threading.local):
    data = b""
    at = 0
    generation = -1


_pool = _Pool()


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


def random_bytes(count: int) -> bytes:
    """``count`` bytes from the operating system's random source, fetched 4 KiB at a time for each thread.

    The same bytes ``os.urandom`` gives, without a system call per id or nonce (each one also lets go of the
    interpreter lock, which the database driver's threads then hold). A forked child draws its own bytes.
    """
    pool = _pool
    at = pool.at
    if pool.generation != _generation or at + count > len(pool.data):
        pool.data = os.urandom(max(_POOL_BYTES, count))
        pool.generation = _generation
        at = 0
    pool.at = at + count
    return pool.data[at : at + count]


def time_ordered_id(now_ns: int | None = None) -> str:
    """A new UUIDv7 as text (``xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx``); ``now_ns`` fixes the clock for tests."""
    millis = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = int.from_bytes(random_bytes(10))  # 80 bits: the low 62 for rand_b, the next 12 for rand_a, 6 unused
    rand_a = (rand >> 62) & 0xFFF
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | _VERSION | rand_a << 64 | _VARIANT | rand & _RAND_B
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
