"""Build the configured bus transport."""

from __future__ import annotations

from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.bus.kafka_security import KafkaSecurity
from shared.db import create_engine
from shared.settings import ServiceSettings


def create_bus(settings: ServiceSettings, *, client_id: str) -> Bus:
    """The transport named by ``settings.bus``."""
    if settings.bus == "kafka":
        return KafkaBus(
            settings.kafka_bootstrap_servers,
            client_id=client_id,
            security=kafka_security(settings),
            partitions=settings.kafka_partitions,
            publish_timeout=settings.kafka_publish_timeout,
        )
    return EmbeddedBus(create_engine(settings.embedded_bus_url, pool_size=5))


def kafka_security(settings: ServiceSettings) -> KafkaSecurity:
    """The Kafka credential and transport security named by the settings."""
    return KafkaSecurity(
        protocol=settings.kafka_security_protocol,
        mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_username,
        password=settings.kafka_password.get_secret_value(),
        ca_file=settings.kafka_ca_file,
    )
