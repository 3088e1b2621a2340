"""A distributed deployment under steady load, with its own servers to kill, and the exactly-once audit after."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.procs import ROOT, Proc, auth_headers, free_port, wait_ready
from tests.helpers import eventually

SERVICES = ("intake", "dispatch", "evaluation")
# Statuses of a case that reached a unit (it was dispatched, whatever happened after).
ROUTED = {
    "dispatched",
    "signed",
    "in_progress",
    "extension_requested",
    "completed",
    "called_back",
    "closed",
    "reopened",
    "returned",
    "disputed",
}


class OwnServer:
    """A PostgreSQL or Kafka server of the caller's own (own state directory and port), safe to kill."""

    def __init__(self, kind: str, var: Path) -> None:
        self.kind = kind
        self.port = free_port()
        port_variable = "JIESU_PG_PORT" if kind == "postgres" else "JIESU_KAFKA_PORT"
        self.env = {**os.environ, "JIESU_VAR": str(var), port_variable: str(self.port)}

    def run(self, action: str) -> None:
        """``scripts/<kind>.sh <action>``: start, stop or kill (SIGKILL, as in a crash)."""
        done = subprocess.run(
            ["bash", f"scripts/{self.kind}.sh", action],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{self.kind}.sh {action} failed:\n{done.stderr[-3000:]}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def database_url(self, name: str) -> str:
        return f"postgresql+asyncpg://jiesu:jiesu@127.0.0.1:{self.port}/{name}"


class Fleet:
    """Each service and each outbox relay its own process (distributed mode); dispatch may run several times."""

    def __init__(
        self,
        var: Path,
        *,
        database_urls: Mapping[str, str],
        kafka: str,
        namespace: str,
        dispatchers: int = 1,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.var = var
        self.procs: dict[str, Proc] = {}
        self.urls: dict[str, str] = {}
        self.restarts: Counter[str] = Counter()
        for service in SERVICES:
            prefix = f"JIESU_{service.upper()}_"
            service_env = {
                f"{prefix}DATABASE_URL": database_urls[service],
                f"{prefix}BUS": "kafka",
                f"{prefix}KAFKA_BOOTSTRAP_SERVERS": kafka,
                f"{prefix}TOPIC_NAMESPACE": namespace,
                # Short, so an outage shows in seconds; long outages are the soak's business.
                f"{prefix}KAFKA_PUBLISH_TIMEOUT": "3",
                **(env or {}),
            }
            several = service == "dispatch" and dispatchers > 1
            names = [f"dispatch-{n}" for n in range(1, dispatchers + 1)] if several else [service]
            for name in names:
                port = free_port()
                self.urls[name] = f"http://127.0.0.1:{port}"
                args = ["serve", service, "--port", str(port), "--migrate"]
                self.procs[name] = Proc(args, log=var / f"{name}.log", env=service_env)
            self.procs[f"{service}-relay"] = Proc(["relay", service], log=var / f"{service}-relay.log", env=service_env)
        if dispatchers > 1:
            self.urls["dispatch"] = self.urls["dispatch-1"]

    def start(self) -> Fleet:
        """Start every process (services first, so their migrations run before the relays read the outbox)."""
        services = [name for name in self.procs if not name.endswith("-relay")]
        # One instance per database migrates it first: two running the same migration at once would collide.
        first = [name for name in services if name in SERVICES or name == "dispatch-1"]
        for group in (first, [name for name in services if name not in first]):
            for name in group:
                self.procs[name].start()
            for name in group:
                wait_ready(self.urls[name], proc=self.procs[name], timeout=120)
        for name in self.procs:
            if name.endswith("-relay"):
                self.procs[name].start()
        return self

    def kill(self, name: str) -> None:
        """SIGKILL one process: no clean-up, as in a crash."""
        self.procs[name].kill()

    def restart(self, name: str) -> None:
        """Start a killed process again, logging to a new file."""
        self.restarts[name] += 1
        old = self.procs[name]
        self.procs[name] = Proc(old.args, log=self.var / f"{name}-{self.restarts[name] + 1}.log", env=old.env)
        self.procs[name].start()

    def wait_ready(self, name: str, *, timeout: float = 120) -> None:
        wait_ready(self.urls[name], proc=self.procs[name], timeout=timeout)

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            proc.stop()

    def tails(self) -> str:
        return "\n".join(f"--- {name}\n{proc.tail()[-1500:]}" for name, proc in self.procs.items())

    @contextlib.contextmanager
    def running(self) -> Iterator[Fleet]:
        """Started for the block and stopped after it; a failed assertion carries the processes' last log lines."""
        try:
            yield self.start()
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{self.tails()}") from None
        finally:
            self.stop()


@dataclass
class Load:
    """Reports posted at a steady rate whatever happens; remembers every report answered 201."""

    intake: str
    rate: float = 10.0
    accepted: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    # How long one report is sent again after 503s and broken connections before it counts as given up.
    resend_for: float = 120.0

    async def accepted_at_least(self, count: int) -> bool:
        """Whether ``count`` reports have been answered 201 (a probe for ``eventually``)."""
        return len(self.accepted) >= count

    async def run(self, stop: asyncio.Event, *, in_flight: int = 32) -> None:
        """Post at the rate until stopped (open loop: a slow answer does not delay the next report)."""
        async with httpx.AsyncClient(timeout=10, headers=auth_headers()) as http:
            loop = asyncio.get_running_loop()
            began = loop.time()
            slots = asyncio.Semaphore(in_flight)
            pending: set[asyncio.Task[None]] = set()
            while not stop.is_set():
                self.sent += 1
                await slots.acquire()
                task = asyncio.create_task(self._report(http, self.sent, slots))
                pending.add(task)
                task.add_done_callback(pending.discard)
                pause = began + self.sent / self.rate - loop.time()
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), pause)
            if pending:
                await asyncio.wait(pending)

    async def _report(self, http: httpx.AsyncClient, number: int, slots: asyncio.Semaphore) -> None:
        body = {"source": "hotline", "external_id": uuid.uuid4().hex, "content": f"路灯不亮了，第{number}处，晚上很黑"}
        try:
            answer = await self._post(http, body)
        finally:
            slots.release()
        if answer is None:
            return
        self._count(answer)
        if answer.status_code == 201:
            self.accepted.append(answer.json()["id"])

    def _count(self, answer: httpx.Response) -> None:
        """Count an answer by its status; keep the first refusals whole."""
        self.answers[str(answer.status_code)] += 1
        if answer.status_code != 201 and len(self.refusals) < 20:
            self.refusals.append(
                {"status": answer.status_code, "type": answer.headers.get("content-type"), **answer.json()}
            )

    async def _post(self, http: httpx.AsyncClient, body: dict[str, str]) -> httpx.Response | None:
        # Intake may have committed the report before the connection broke, or before its database connection died
        # during COMMIT (answered 503): only the same external_id again can tell (a replay answers 201 with the first
        # id), so a broken exchange or a 503 is retried with the same body, as the API asks, never dropped.
        deadline = asyncio.get_running_loop().time() + self.resend_for
        for attempt in itertools.count():
            try:
                answer = await http.post(f"{self.intake}/v1/reports", json=body)
            except httpx.HTTPError as error:
                self.answers[type(error).__name__] += 1
                pause = min(0.2 * 2 ** min(attempt, 4), 3.0)
            else:
                if answer.status_code != 503:
                    return answer
                self._count(answer)
                pause = float(answer.headers.get("retry-after", "1"))
            if asyncio.get_running_loop().time() + pause > deadline:
                break
            await asyncio.sleep(pause)
        self.answers["gave up"] += 1
        return None


async def all_cases(http: httpx.AsyncClient, dispatch: str) -> list[dict[str, Any]]:
    """Every case dispatch holds, page by page."""
    cases: list[dict[str, Any]] = []
    while True:
        page = (await http.get(f"{dispatch}/v1/cases", params={"limit": 500, "offset": len(cases)})).json()
        cases.extend(page["items"])
        if not page["items"] or len(cases) >= page["total"]:
            return cases


async def audit(urls: Mapping[str, str], accepted: list[str], *, timeout: float = 180) -> dict[str, Any]:
    """Wait until each accepted report is one case in dispatch and in evaluation; metrics must equal a recount."""
    expected = sorted(accepted)
    assert len(set(expected)) == len(expected), "intake answered 201 twice with the same id"
    async with httpx.AsyncClient(timeout=30, headers=auth_headers()) as http:
        seen: dict[str, Any] = {}

        async def judged_once() -> bool:
            cases = await all_cases(http, urls["dispatch"])
            seen["cases"] = cases
            return sorted(case["id"] for case in cases) == expected and all(
                case["status"] != "received" for case in cases
            )

        try:
            await eventually(judged_once, timeout=timeout, what=f"{len(expected)} cases, each once, judged")
        except AssertionError:
            ids = Counter(case["id"] for case in seen.get("cases", []))
            missing = set(expected) - set(ids)
            raise AssertionError(
                f"dispatch holds {len(ids)} distinct cases ({sum(ids.values())} rows) for {len(expected)} accepted; "
                f"missing {len(missing)} (e.g. {sorted(missing)[:3]}), "
                f"doubled {[i for i, n in ids.items() if n > 1][:3]}, extra {len(set(ids) - set(expected))}"
            ) from None
        cases: list[dict[str, Any]] = seen["cases"]
        routed = [case for case in cases if case["status"] in ROUTED]

        async def evaluated() -> bool:
            missing = [
                case["id"]
                for case in routed
                if (await http.get(f"{urls['evaluation']}/v1/evaluations/{case['id']}")).status_code != 200
            ]
            seen["not_evaluated"] = missing[:5]
            return not missing

        recount = Counter(case["primary_unit"] for case in routed)

        async def counted() -> dict[str, int] | None:
            page = (await http.get(f"{urls['evaluation']}/v1/metrics", params={"grouping": "all"})).json()
            counts = {row["unit_code"]: row["dispatched"] for row in page["items"] if row["dispatched"]}
            seen["metrics"] = counts
            return counts if counts == dict(recount) else None

        await eventually(evaluated, timeout=timeout, what="every dispatched case in evaluation")
        await eventually(counted, timeout=60, what=f"metrics to equal the recount {dict(recount)}")
    return {
        "accepted": len(expected),
        "cases": len(cases),
        "routed": len(routed),
        "statuses": dict(Counter(case["status"] for case in cases)),
        "dispatched_per_unit": dict(recount),
    }
