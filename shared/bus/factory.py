"""Build the configured bus transport."""

from __future__ import annotations

from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.db import create_engine
from shared.settings import ServiceSettings


def create_bus(settings: ServiceSettings, *, client_id: str) -> Bus:
    """The transport named by ``settings.bus``."""
    if settings.bus == "kafka":
        return KafkaBus(settings.kafka_bootstrap_servers, client_id=client_id)
    return EmbeddedBus(create_engine(settings.embedded_bus_url, pool_size=5))
