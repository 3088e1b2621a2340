"""How a service authenticates to Kafka: security protocol, SASL mechanism, credential and CA file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


@dataclass(frozen=True)
class KafkaSecurity:
    """A Kafka client's security settings; the default is an unauthenticated PLAINTEXT connection."""

    protocol: SecurityProtocol = "PLAINTEXT"
    mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str = ""
    password: str = ""
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol.startswith("SASL") and not (self.username and self.password):
            raise ValueError(f"{self.protocol} needs a Kafka username and password")

    def __repr__(self) -> str:
        # The password never reaches a log line or a traceback.
        return f"KafkaSecurity(protocol={self.protocol!r}, mechanism={self.mechanism!r}, username={self.username!r})"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer, admin and low-level clients."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            options |= {
                "sasl_mechanism": self.mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        if self.protocol.endswith("SSL"):
            options["ssl_context"] = create_ssl_context(cafile=str(self.ca_file) if self.ca_file else None)
        return options
