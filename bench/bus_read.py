"""What a consumer's read of the embedded bus costs per message: the query, the rows, the events made from them.

    uv run python -m bench.bus_read
    uv run python -m bench.bus_read --messages 50000 --rounds 5
    uv run python -m bench.bus_read --follow 4     # one consumer group following all four topics

Every service reads its topics through ``EmbeddedSubscription.fetch`` (and the load generator reads the unit and
case topics the same way): under load a report's events are read some 17 times in all. The bench fills a bus file
with report-shaped events (the load generator's corpus, as ``report.received`` carries them) spread over four
topics, then a fresh consumer group reads one topic to its end in fetches of 200, as each service's consumer reads
its one topic, several rounds; it prints the CPU time per message read for each round (the best is the figure to
compare; the machine's other work only adds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import Corpus
from bench.loadgen import say
from shared.bus.base import OutgoingMessage
from shared.bus.embedded import EmbeddedBus
from shared.db import create_engine
from shared.events import CloudEvent

TOPICS = ["jiesu.intake.reports", "jiesu.dispatch.cases", "jiesu.dispatch.unit.DEPT-MR", "jiesu.dispatch.unit.ST-1"]


def _message(n: int, corpus: Corpus) -> OutgoingMessage:
    data = corpus.report() | {"id": f"r{n:012d}", "case_number": f"JS{n:08d}", "received_at": "2026-11-28T04:00:00Z"}
    event = CloudEvent(type="jiesu.intake.report.received.v1", source="/intake", subject=f"r{n}", data=data)
    return OutgoingMessage(topic=TOPICS[n % len(TOPICS)], key=f"r{n}", event=event)


async def _read_all(bus: EmbeddedBus, group: str, follow: int) -> int:
    subscription = bus.subscribe(group=group, topics=TOPICS[:follow], pattern=None)
    await subscription.start()
    read = 0
    try:
        while found := await subscription.fetch(max_records=200, timeout=0):
            read += len(found)
    finally:
        await subscription.close()
    return read


async def run(messages: int, rounds: int, follow: int = 1) -> dict[str, Any]:
    corpus = Corpus()
    with tempfile.TemporaryDirectory(prefix="jiesu-bus-") as folder:
        bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{Path(folder) / 'bus.db'}"))
        await bus.start()
        try:
            for start in range(0, messages, 5_000):
                await bus.publish([_message(n, corpus) for n in range(start, min(messages, start + 5_000))])
            say(f"bus of {messages:,} messages; reading them all, {rounds} rounds")
            per_message: list[float] = []
            for round_ in range(rounds):
                began = time.process_time()
                read = await _read_all(bus, f"bench-{round_}", follow)
                per_message.append(round((time.process_time() - began) / read * 1e6, 2))
                say(f"  round {round_ + 1}: {read:,} messages, {per_message[-1]} us of CPU each")
        finally:
            await bus.close()
    return {
        "messages": messages,
        "topics_followed": follow,
        "cpu_us_per_message": per_message,
        "best_us": min(per_message),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--follow", type=int, choices=range(1, len(TOPICS) + 1), default=1, help="topics read")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.messages, args.rounds, args.follow)), indent=1))


if __name__ == "__main__":
    main()
