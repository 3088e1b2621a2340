"""A service's running parts: database, bus, outbox relay and consumers, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import topics
from shared.bus.base import Bus
from shared.bus.factory import create_bus
from shared.consumer import ConsumerSpec, run_consumer
from shared.db import create_engine, reading, session_factory
from shared.migrate import SchemaCheck
from shared.outbox import MessagingTables
from shared.relay import OutboxRelay
from shared.retention import Housekeeping, Reader, days
from shared.settings import ServiceSettings

log = logging.getLogger("jiesu.runtime")


@dataclass
class ServiceRuntime:
    """Everything one service instance owns while it runs."""

    name: str
    settings: ServiceSettings
    tables: MessagingTables
    consumer_specs: Sequence[ConsumerSpec] = ()
    bus: Bus | None = None
    background: Sequence[Callable[[ServiceRuntime], Coroutine[Any, Any, None]]] = ()
    engine: AsyncEngine = field(init=False)
    sessions: async_sessionmaker[AsyncSession] = field(init=False)
    relay: OutboxRelay | None = field(default=None, init=False)
    schema_checks: list[SchemaCheck] = field(default_factory=list, init=False)  # set by the app: its databases
    housekeeping: Housekeeping | None = field(default=None, init=False)
    stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _owns_bus: bool = field(default=False, init=False)

    async def start(self, *, consumers: bool | None = None, relay: bool | None = None) -> None:
        """Open the database and bus; start consumers and the relay when configured."""
        self.engine = create_engine(self.settings.database_url)
        self.sessions = session_factory(self.engine)
        if self.bus is None:
            self.bus = create_bus(self.settings, client_id=f"jiesu-{self.name}")
            self._owns_bus = True
            await self.bus.start()
        run_consumers = self.settings.consumers if consumers is None else consumers
        run_relay = self.settings.relay if relay is None else relay
        if run_relay:
            self.relay = OutboxRelay(
                engine=self.engine,
                tables=self.tables,
                bus=self.bus,
                name=self.name,
                namespace=self.settings.topic_namespace,
                batch_size=self.settings.relay_batch_size,
                poll_seconds=self.settings.relay_poll_seconds,
            )
            self._spawn(self.relay.run(self.stop), "relay")
        if self.settings.housekeeping_seconds > 0:
            self.housekeeping = Housekeeping(
                name=self.name,
                engine=self.engine,
                tables=self.tables,
                bus=self.bus,
                readers=[Reader(spec.group, tuple(spec.topics), spec.pattern) for spec in self.consumer_specs],
                dead_letter_topic=topics.named(self.settings.topic_namespace, topics.DEAD_LETTERS),
                keep_published=days(self.settings.keep_published_days),
                keep_inbox=days(self.settings.keep_inbox_days),
                keep_bus=days(self.settings.keep_bus_days),
                every=self.settings.housekeeping_seconds,
            )
            self._spawn(self.housekeeping.run(self.stop), "housekeeping")
        for index, work in enumerate(self.background):
            self._spawn(work(self), f"background-{index}")
        if run_consumers:
            for spec in self.consumer_specs:
                if spec.dead_letter_topic is None:
                    spec.dead_letter_topic = topics.named(self.settings.topic_namespace, topics.DEAD_LETTERS)
                self._spawn(
                    run_consumer(self.bus, spec, sessions=self.sessions, tables=self.tables, stop=self.stop),
                    spec.group,
                )

    def _spawn(self, coro: Coroutine[Any, Any, None], label: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.name}:{label}")
        task.add_done_callback(self._report_crash)
        self._tasks.append(task)

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped unexpectedly", task.get_name(), exc_info=task.exception())

    def outbox_written(self) -> None:
        """Called after a commit that wrote outbox rows."""
        if self.relay is not None:
            self.relay.notify()

    def background_healthy(self) -> bool:
        """Whether every background task is still running."""
        return all(not task.done() for task in self._tasks)

    async def database_ready(self) -> bool:
        """Whether the service's database answers."""
        try:
            async with reading(self.engine) as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        """Stop background work, then close the bus and the database."""
        self.stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._owns_bus and self.bus is not None:
            await self.bus.close()
        await self.engine.dispose()
