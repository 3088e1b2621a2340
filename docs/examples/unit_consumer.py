"""A department app's consumer: read the unit's work from Kafka and act on it over REST.

    pip install aiokafka httpx
    python unit_consumer.py --bootstrap 127.0.0.1:59092 --unit DEPT-UM --dispatch http://127.0.0.1:8002

On a cluster with SASL and ACLs (deploy/README.md, "Kafka security") the unit signs in as ``unit-<CODE>`` with
the password the operator gave it, and may read only its own topic with consumer groups named ``<CODE>.<anything>``:

    JIESU_UNIT_KAFKA_PASSWORD=... python unit_consumer.py --bootstrap kafka.example:9092 --unit DEPT-UM \
        --security-protocol SASL_SSL --ca-file /etc/ssl/jiesu-kafka-ca.pem

Each message is a CloudEvents 1.0 binary-mode message (ce_* headers, JSON value, key = case id). Delivery is at
least once, so the app remembers which ce_id it handled; it commits its offset only after handling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.helpers import create_ssl_context


def security(protocol: str, unit: str, ca_file: str | None) -> dict[str, Any]:
    """aiokafka options for PLAINTEXT, or SCRAM-SHA-512 as ``unit-<CODE>`` (password from the environment)."""
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        options |= {
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": f"unit-{unit}",
            "sasl_plain_password": os.environ["JIESU_UNIT_KAFKA_PASSWORD"],
        }
    if protocol.endswith("SSL"):
        options["ssl_context"] = create_ssl_context(cafile=ca_file)
    return options


async def main(bootstrap: str, unit: str, dispatch: str, *, protocol: str, ca_file: str | None) -> None:
    consumer = AIOKafkaConsumer(
        f"jiesu.dispatch.unit.{unit}",
        bootstrap_servers=bootstrap,
        group_id=f"{unit}.app",  # the unit's ACLs allow only groups starting with "<CODE>."
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **security(protocol, unit, ca_file),
    )
    handled: set[str] = set()  # keep this in the app's own database in production
    await consumer.start()
    try:
        async with httpx.AsyncClient(base_url=dispatch, timeout=10) as api:
            async for record in consumer:
                headers = {name: value.decode() for name, value in record.headers}
                event_id, event_type = headers["ce_id"], headers["ce_type"]
                if event_id in handled:
                    continue
                data = json.loads(record.value or b"{}")
                if event_type == "jiesu.dispatch.assignment.created.v1" and data["role"] == "primary":
                    print(f"new case {data['case_number']}: {data['content']} (sign by {data['sign_deadline']})")
                    answer = await api.post(f"/v1/cases/{data['case_id']}/sign", json={"unit_code": unit})
                    if answer.status_code == 409:  # already signed (a redelivery): the body says the status
                        print("  already", answer.json()["current_status"])
                elif event_type == "jiesu.dispatch.unit.notice.v1":
                    print(f"notice on {data['case_number']}: {data['notice']} ({data['deadline']} deadline)")
                elif event_type == "jiesu.dispatch.action.rejected.v1":
                    print(f"refused {data['action']} on {data['case_id']}: {data['detail']}")
                handled.add(event_id)
                await consumer.commit()
    finally:
        await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="127.0.0.1:59092")
    parser.add_argument("--unit", required=True)
    parser.add_argument("--dispatch", default="http://127.0.0.1:8002")
    parser.add_argument("--security-protocol", default="PLAINTEXT", choices=["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"])
    parser.add_argument("--ca-file", default=None, help="CA bundle of the cluster (SASL_SSL)")
    arguments = parser.parse_args()
    asyncio.run(
        main(
            arguments.bootstrap,
            arguments.unit,
            arguments.dispatch,
            protocol=arguments.security_protocol,
            ca_file=arguments.ca_file,
        )
    )
