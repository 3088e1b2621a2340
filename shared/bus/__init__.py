"""One bus interface, two durable transports: Kafka and an embedded SQL log."""

from shared.bus.base import Bus, Delivery, OutgoingMessage, Subscription

__all__ = ["Bus", "Delivery", "OutgoingMessage", "Subscription"]
