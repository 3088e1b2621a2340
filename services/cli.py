"""The ``jiesu`` command: every role (services, relay, migrations) and tool in one place."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from services.dispatch.classifier.cli import add_model_commands
from services.registry import SERVICES, ServiceSpec
from shared.auth import MIGRATIONS as AUTH_MIGRATIONS
from shared.auth import AuthSettings
from shared.auth.cli import add_key_commands, first_admin_key
from shared.bus.embedded import EmbeddedBus
from shared.bus.factory import create_bus
from shared.db import create_engine
from shared.migrate import upgrade
from shared.relay import OutboxRelay
from tools.kafka_acls.cli import add_kafka_acl_commands

log = logging.getLogger("jiesu")


def say(message: str) -> None:
    """Progress for the person at the terminal."""
    print(f"jiesu: {message}", file=sys.stderr, flush=True)


def settle_heap() -> None:
    """Once a process has started: free what start-up left behind, then set everything still alive aside.

    What a service builds at start (modules, the guide, the classifier, caches) lives as long as the process, yet
    every full collection of Python's cyclic garbage collector walked all of it again: a third of the CPU of a
    batch of reports. Frozen objects are never walked again (reference counting still frees them).
    """
    gc.collect()
    gc.freeze()


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the command, so several can share one process."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)  # the app's lifespan has started everything by now
        settle_heap()


def _embedded_overrides(var: Path) -> dict[str, dict[str, Any]]:
    var = var.resolve()
    return {
        name: {
            "database_url": f"sqlite+aiosqlite:///{var / f'{name}.db'}",
            "bus": "embedded",
            "embedded_bus_url": f"sqlite+aiosqlite:///{var / 'bus.db'}",
            "relay": True,
            "consumers": True,
        }
        for name in SERVICES
    }


def migrate(spec: ServiceSpec, database_url: str) -> None:
    """Bring one service's database to the newest schema."""
    say(f"migrating {spec.name} database")
    upgrade(script_location=spec.migrations, database_url=database_url)


def migrate_auth(database_url: str) -> None:
    """Bring the credential store (shared by the three services) to the newest schema."""
    say("migrating the credential store")
    upgrade(script_location=AUTH_MIGRATIONS, database_url=database_url)


async def _serve_all(servers: list[_Server]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        say("stopping")
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(server.serve() for server in servers))


def cmd_up(args: argparse.Namespace) -> int:
    """Embedded mode: SQLite under var/, the embedded bus; a process per service (or all in one)."""
    var = Path(args.var)
    var.mkdir(parents=True, exist_ok=True)
    overrides = _embedded_overrides(var)
    data_dir = var.resolve()
    ports = dict(zip(SERVICES, args.ports, strict=True))
    settings = {name: spec.make_settings(**overrides[name]) for name, spec in SERVICES.items()}
    for name, spec in SERVICES.items():
        migrate(spec, settings[name].database_url)
    # One credential store for the three, beside their databases.
    auth = AuthSettings(database_url=f"sqlite+aiosqlite:///{data_dir / 'auth.db'}")
    first_key = first_admin_key(auth.database_url)
    if first_key is not None:
        say("first start: an admin API key was created; it is shown only now, store it safely:")
        say(f"  {first_key}")
        say("  send it as: Authorization: Bearer <key>   (more keys: jiesu keys create --role ...)")

    if not args.one_process:
        return _up_in_processes(args, overrides=overrides, auth=auth, ports=ports, data_dir=data_dir)

    async def run() -> None:
        bus = EmbeddedBus(create_engine(overrides["intake"]["embedded_bus_url"], pool_size=5))
        await bus.start()
        servers = []
        for name, spec in SERVICES.items():
            app = spec.create_app(settings[name], bus=bus, auth=auth)
            config = uvicorn.Config(app, host=args.host, port=ports[name], log_level=args.log_level, access_log=False)
            servers.append(_Server(config))
            say(f"{name} on http://{args.host}:{ports[name]}  (docs: /docs, OpenAPI: /openapi.json)")
        say(f"embedded mode: data in {data_dir}; Ctrl-C stops")
        try:
            await _serve_all(servers)
        finally:
            await bus.close()

    asyncio.run(run())
    return 0


# glibc gives each thread that allocates its own malloc arena (up to 8 per core), and each keeps what it freed: the
# database driver's threads made a service process some 12 MB larger under load. Two arenas, unless set already
# (the container image sets the same).
PROCESS_DEFAULTS = {"MALLOC_ARENA_MAX": "2"}


def _die_with_parent() -> None:
    # In the child before exec: a `jiesu up` that is killed outright takes its services with it (Linux).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _up_in_processes(
    args: argparse.Namespace,
    *,
    overrides: dict[str, dict[str, Any]],
    auth: AuthSettings,
    ports: dict[str, int],
    data_dir: Path,
) -> int:
    """Each service in its own process (its own core), all sharing the embedded bus file; stop all if one stops."""

    async def create_bus_tables() -> None:
        bus = EmbeddedBus(create_engine(overrides["intake"]["embedded_bus_url"], pool_size=1))
        await bus.start()  # here, once, rather than three processes racing to create the log's tables
        await bus.close()

    asyncio.run(create_bus_tables())
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name in SERVICES:
        env = {f"JIESU_{name.upper()}_{key.upper()}": str(value) for key, value in overrides[name].items()}
        env["JIESU_AUTH_DATABASE_URL"] = auth.database_url
        nice = 0 if SERVICES[name].response_path else args.background_nice
        command = [sys.executable, "-m", "services.cli", "--log-level", args.log_level, "serve", name]
        children[name] = subprocess.Popen(
            [*command, "--host", args.host, "--port", str(ports[name]), "--nice", str(nice)],
            env={**PROCESS_DEFAULTS, **os.environ, **env},
            preexec_fn=_die_with_parent,
        )
        lowered = f"; CPU priority lowered by {nice}, off the response path" if nice else ""
        say(f"{name} on http://{args.host}:{ports[name]}  (process {children[name].pid}; docs: /docs{lowered})")
    say(f"embedded mode: data in {data_dir}; a process per service; Ctrl-C stops")
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            say("stopping")
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    while all(child.poll() is None for child in children.values()):
        time.sleep(0.2)
    if not stopping:
        gone = [name for name, child in children.items() if child.poll() is not None]
        say(f"{', '.join(gone)} stopped; stopping the others")
        stop(signal.SIGTERM, None)
    for child in children.values():
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0 if stopping else 1


def _niceness(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 19:
        raise argparse.ArgumentTypeError(f"{text!r} is not a niceness from 0 (unchanged) to 19 (lowest priority)")
    return value


def _lower_priority(by: int) -> None:
    """Lower this process's CPU priority by ``by``. On Linux a niceness is a thread's: threads started later take
    the main thread's over, and those already running (a native library's pool, started on import) are set here."""
    value = os.nice(by)
    for task in Path("/proc/self/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), value)


def cmd_serve(args: argparse.Namespace) -> int:
    """One service, as configured by its environment (distributed mode)."""
    spec = SERVICES[args.service]
    if args.nice:
        _lower_priority(args.nice)
    settings = spec.make_settings()
    if args.migrate:
        migrate(spec, settings.database_url)
        migrate_auth(AuthSettings().database_url)
    app = spec.create_app(settings)
    say(f"{spec.name} on http://{args.host}:{args.port or spec.port} (bus: {settings.bus})")
    config = uvicorn.Config(
        app, host=args.host, port=args.port or spec.port, log_level=args.log_level, access_log=False
    )
    asyncio.run(_serve_all([_Server(config)]))
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    """The outbox relay of one service, on its own."""
    spec = SERVICES[args.service]
    settings = spec.make_settings()
    from importlib import import_module

    tables = import_module(f"services.{spec.name}.models").messaging

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        engine = create_engine(settings.database_url, pool_size=2)
        bus = create_bus(settings, client_id=f"jiesu-{spec.name}-relay")
        await bus.start()
        relay = OutboxRelay(
            engine=engine,
            tables=tables,
            bus=bus,
            name=spec.name,
            namespace=settings.topic_namespace,
            batch_size=settings.relay_batch_size,
            poll_seconds=settings.relay_poll_seconds,
        )
        say(f"relay for {spec.name}: outbox -> {settings.bus}")
        settle_heap()
        try:
            await relay.run(stop)
        finally:
            say(f"relay for {spec.name} stopped after publishing {relay.published} events")
            await bus.close()
            await engine.dispose()

    asyncio.run(run())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply migrations to the databases named: services, ``auth`` (the credential store), or all of them."""
    names = [*SERVICES, "auth"] if "all" in args.service else list(dict.fromkeys(args.service))
    for name in names:
        if name == "auth":
            migrate_auth(AuthSettings().database_url)
        else:
            migrate(SERVICES[name], SERVICES[name].make_settings().database_url)
    say("migrations applied")
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    """Send dead letters back to their topics after the cause was fixed."""
    from shared import topics
    from shared.consumer import redrive

    spec = SERVICES[args.service]
    settings = spec.make_settings()

    async def run() -> int:
        bus = create_bus(settings, client_id=f"jiesu-{spec.name}-redrive")
        await bus.start()
        try:
            return await redrive(
                bus,
                dead_letter_topic=topics.named(settings.topic_namespace, topics.DEAD_LETTERS),
                group=args.group,
                reader=f"{settings.topic_namespace}jiesu-redrive",
            )
        finally:
            await bus.close()

    sent = asyncio.run(run())
    say(f"re-drove {sent} dead letters" + (f" of {args.group}" if args.group else ""))
    return 0


def cmd_asyncapi(args: argparse.Namespace) -> int:
    """Write the AsyncAPI document generated from the event contract, or check the committed one."""
    from shared.asyncapi import render

    text = render()
    if args.check:
        current = Path(args.out).read_text(encoding="utf-8") if Path(args.out).exists() else ""
        if current != text:
            say(f"{args.out} is out of date with the event contract; run: jiesu asyncapi --out {args.out}")
            return 1
        say(f"{args.out} matches the code")
        return 0
    Path(args.out).write_text(text, encoding="utf-8")
    say(f"wrote {args.out}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="jiesu", description="jiesu call-and-respond dispatch (接诉即办)")
    top.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = top.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run all three services on one machine (SQLite, embedded bus)")
    up.add_argument("--var", default="var", help="folder for the databases (default: ./var)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument(
        "--ports", type=int, nargs=3, default=[8001, 8002, 8003], metavar=("INTAKE", "DISPATCH", "EVALUATION")
    )
    up.add_argument(
        "--one-process", action="store_true", help="the three services in this one process (less memory, one core)"
    )
    up.add_argument(
        "--background-nice",
        type=_niceness,
        default=10,
        metavar="N",
        help="run the services off the response path (evaluation) at this lower CPU priority, 0-19, so that under "
        "full load reports are judged and assigned first and evaluation catches up in the gaps (default: 10; "
        "0: the same priority as the others; not with --one-process, whose services share one process)",
    )
    up.set_defaults(run=cmd_up)

    serve = sub.add_parser("serve", help="run one service (configured by JIESU_<SERVICE>_* variables)")
    serve.add_argument("service", choices=list(SERVICES))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.add_argument(
        "--nice",
        type=_niceness,
        default=0,
        metavar="N",
        help="lower this process's CPU priority by N (0-19), for a service off the response path sharing cores "
        "with those on it (default: 0)",
    )
    serve.set_defaults(run=cmd_serve)

    relay = sub.add_parser("relay", help="run one service's outbox relay")
    relay.add_argument("service", choices=list(SERVICES))
    relay.set_defaults(run=cmd_relay)

    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.add_argument(
        "service", nargs="+", choices=[*SERVICES, "auth", "all"], help="services, auth (credentials) or all"
    )
    mig.set_defaults(run=cmd_migrate)

    again = sub.add_parser("redrive", help="send dead letters back to their topics after a fix")
    again.add_argument("service", choices=list(SERVICES), help="whose bus settings to use")
    again.add_argument("--group", default=None, help="only the letters of this consumer group")
    again.set_defaults(run=cmd_redrive)

    doc = sub.add_parser("asyncapi", help="write (or --check) the AsyncAPI document of every topic and event")
    doc.add_argument("--out", default="docs/asyncapi.json")
    doc.add_argument("--check", action="store_true", help="fail if the file differs from the code")
    doc.set_defaults(run=cmd_asyncapi)
    add_model_commands(sub)
    add_key_commands(sub)
    add_kafka_acl_commands(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jiesu`` console script."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
