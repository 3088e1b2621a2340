"""The bus contract every transport fulfils."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.events import CloudEvent


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """An event bound for a topic; the key (the case id) keeps one case's events in order."""

    topic: str
    key: str
    event: CloudEvent
    body: bytes | None = None  # the event's data already encoded (as the outbox stores it), to skip encoding again

    def value(self) -> bytes:
        """The message value: the event's data as compact UTF-8 JSON."""
        return self.body if self.body is not None else self.event.body()


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event as a consumer received it, with where it sits in the log."""

    topic: str
    partition: int
    offset: int
    key: str | None
    event: CloudEvent


class Subscription(Protocol):
    """A consumer group's view of some topics; offsets advance only on ``commit``."""

    async def start(self) -> None: ...

    async def fetch(self, *, max_records: int = 200, timeout: float = 1.0) -> list[Delivery]: ...

    async def commit(self, deliveries: Sequence[Delivery]) -> None: ...

    async def close(self) -> None: ...


class Bus(Protocol):
    """Publishes durably (returns only once the log has acknowledged) and hands out subscriptions."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None: ...

    def subscribe(self, *, group: str, topics: Sequence[str] = (), pattern: str | None = None) -> Subscription: ...

    async def redelivery_floor(
        self,
        *,
        groups: Sequence[str] = (),
        topics: Sequence[str] = (),
        patterns: Sequence[str] = (),
        dead_letter_topic: str,
    ) -> datetime | None:
        """No message the bus can still deliver to these readers (or re-drive) was first published before this.

        None: the bus may keep messages for ever. An inbox must remember every event at least this old.
        """
        ...
