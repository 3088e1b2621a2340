"""``jiesu keys``: create, list and revoke API keys in the credential store from the command line."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from shared.auth import MIGRATIONS
from shared.auth.roles import ROLES, Role
from shared.auth.settings import AuthSettings
from shared.auth.store import CredentialStore, KeyRecord, check_scope
from shared.db import create_engine
from shared.events import utcnow
from shared.migrate import upgrade

T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)([dh])$")


def expiry(text: str) -> datetime:
    """An expiry: ``30d`` or ``12h`` from now, or an ISO 8601 time with its zone."""
    match = _DURATION.fullmatch(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return utcnow() + (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give the time zone, e.g. 2027-01-01T00:00:00+08:00")
    return moment


def with_store(database_url: str, work: Callable[[CredentialStore], Awaitable[T]]) -> T:
    """Migrate the credential store and run one piece of work on it."""
    upgrade(script_location=MIGRATIONS, database_url=database_url)

    async def run() -> T:
        engine = create_engine(database_url, pool_size=1)
        try:
            return await work(CredentialStore(engine, cache_seconds=0))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def first_admin_key(database_url: str) -> str | None:
    """On a store without any key, a new admin key (its plain text); None once keys exist."""

    async def make(store: CredentialStore) -> str | None:
        if await store.all():
            return None
        _, key = await store.create(role="admin", name="first admin (jiesu up)")
        return key

    return with_store(database_url, make)


def _line(record: KeyRecord) -> str:
    named = {"units": record.units, "grids": record.grids, "streets": record.streets}
    scope = " ".join(f"{name}={','.join(codes)}" for name, codes in named.items() if codes)
    state = "revoked" if record.revoked_at else ("expired" if not record.usable_at(utcnow()) else "active")
    expires = record.expires_at.isoformat() if record.expires_at else "never"
    return f"{record.id}  {record.role:<8} {state:<8} expires {expires}  {record.name}  {scope}".rstrip()


def cmd_create(args: argparse.Namespace) -> int:
    """Create a key and print it once."""
    role: Role = args.role
    try:
        check_scope(role, units=args.unit, grids=args.grid, streets=args.street)
    except ValueError as exc:
        print(f"jiesu: {exc} (--unit/--grid/--street)", file=sys.stderr)
        return 2
    record, key = with_store(
        AuthSettings().database_url,
        lambda store: store.create(
            role=role,
            name=args.name,
            units=args.unit,
            grids=args.grid,
            streets=args.street,
            expires_at=args.expires,
            rate_per_second=args.rate,
        ),
    )
    print(f"jiesu: created {record.role} key {record.id}; it is shown only now, store it safely:", file=sys.stderr)
    print(key)
    return 0


def cmd_list(_args: argparse.Namespace) -> int:
    """List keys without their secrets."""
    for record in with_store(AuthSettings().database_url, lambda store: store.all()):
        print(_line(record))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by id."""
    record = with_store(AuthSettings().database_url, lambda store: store.revoke(args.id))
    if record is None:
        print(f"jiesu: no key {args.id}", file=sys.stderr)
        return 1
    print(f"jiesu: revoked {record.id} ({record.role}, {record.name})", file=sys.stderr)
    return 0


def add_key_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``keys`` command and its subcommands (store: JIESU_AUTH_DATABASE_URL)."""
    keys = sub.add_parser("keys", help="create, list and revoke API keys (JIESU_AUTH_DATABASE_URL)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", default="created with jiesu keys", help="who or what holds the key")
    create.add_argument("--unit", action="append", default=[], help="a unit code (role unit); repeatable")
    create.add_argument("--grid", action="append", default=[], help="a grid code (role grid); repeatable")
    create.add_argument("--street", action="append", default=[], help="a street code (role town); repeatable")
    create.add_argument("--expires", type=expiry, default=None, help="30d, 12h or an ISO time with zone")
    create.add_argument("--rate", type=float, default=None, help="requests a second, instead of the role's")
    create.set_defaults(run=cmd_create)
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.set_defaults(run=cmd_list)
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")
    revoke.set_defaults(run=cmd_revoke)
