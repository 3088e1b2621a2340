"""A department app's consumer: read the unit's work from Kafka and act on it over REST.

    pip install aiokafka httpx
    python unit_consumer.py --bootstrap 127.0.0.1:59092 --unit DEPT-UM --dispatch http://127.0.0.1:8002

Each message is a CloudEvents 1.0 binary-mode message (ce_* headers, JSON value, key = case id). Delivery is at
least once, so the app remembers which ce_id it handled; it commits its offset only after handling.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httpx
from aiokafka import AIOKafkaConsumer


async def main(bootstrap: str, unit: str, dispatch: str) -> None:
    consumer = AIOKafkaConsumer(
        f"jiesu.dispatch.unit.{unit}",
        bootstrap_servers=bootstrap,
        group_id=f"{unit}-app",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
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
    arguments = parser.parse_args()
    asyncio.run(main(arguments.bootstrap, arguments.unit, arguments.dispatch))
