"""``jiesu kafka-acls plan|apply|passwords``: the Kafka users and ACLs of a deployment, from the guide's units."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from shared.bus.kafka_security import KafkaSecurity
from shared.guide import CITY_GUIDE, load_guide
from shared.jurisdiction import load_jurisdiction
from shared.settings import PLACEHOLDER_SECRETS
from tools.kafka_acls.apply import KafkaAdminError, apply_plan
from tools.kafka_acls.plan import Plan, build_plan

PASSWORD_ENV_PREFIX = "JIESU_KAFKA_PASSWORD_"


def password_env(user: str) -> str:
    """The variable holding a user's password: ``jiesu-dispatch`` -> ``JIESU_KAFKA_PASSWORD_JIESU_DISPATCH``."""
    return PASSWORD_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", user.upper())


def _few(names: list[str], shown: int = 6) -> str:
    """A short list for a person: the first few names and how many more."""
    if not names:
        return "none"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _say(message: str) -> None:
    print(f"jiesu kafka-acls: {message}", file=sys.stderr, flush=True)


def _plan(args: argparse.Namespace) -> Plan:
    units = load_guide(args.guide, extra_units=load_jurisdiction(args.jurisdiction).units).units
    return build_plan([u.code for u in units], namespace=args.namespace)


def _passwords(plan: Plan, credentials: Path | None) -> dict[str, str]:
    found: dict[str, str] = {}
    if credentials is not None:
        raw = json.loads(credentials.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or not all(isinstance(v, str) and v for v in raw.values()):
            raise KafkaAdminError(f"{credentials} must be a JSON object of user name -> password")
        found |= raw
    for principal in plan.principals:
        value = os.environ.get(password_env(principal.user))
        if value:
            found[principal.user] = value
    placeholders = sorted(user for user, password in found.items() if password in PLACEHOLDER_SECRETS)
    if placeholders:
        raise KafkaAdminError(f"placeholder passwords (replace them): {', '.join(placeholders)}")
    return found


def cmd_plan(args: argparse.Namespace) -> int:
    """Print every principal and its ACLs without touching a cluster."""
    plan = _plan(args)
    for principal in plan.principals:
        print(f"# {principal.user}: {principal.role} (password from {password_env(principal.user)})")
        for grant in sorted(principal.grants):
            print(grant.describe())
    _say(f"{len(plan.principals)} principals, {len(plan.grants())} ACLs, {len(plan.topics)} topics")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """Create the topics, SCRAM users and ACLs of the plan, as the admin principal."""
    plan = _plan(args)
    admin_user = os.environ.get("JIESU_KAFKA_ADMIN_USER", "admin")
    admin_password = os.environ.get("JIESU_KAFKA_ADMIN_PASSWORD", "")
    if args.security_protocol.startswith("SASL") and admin_password in PLACEHOLDER_SECRETS:
        _say("set JIESU_KAFKA_ADMIN_PASSWORD to the admin's real password (and JIESU_KAFKA_ADMIN_USER unless admin)")
        return 2
    admin = KafkaSecurity(
        protocol=args.security_protocol, username=admin_user, password=admin_password, ca_file=args.ca_file
    )
    try:
        passwords = _passwords(plan, args.credentials)
        applied = asyncio.run(
            apply_plan(
                plan,
                bootstrap_servers=args.bootstrap,
                admin=admin,
                passwords=passwords,
                partitions=args.partitions,
                replication_factor=args.replication_factor,
            )
        )
    except KafkaAdminError as refused:
        _say(str(refused))
        return 1
    _say(f"created {len(applied.topics_created)} topics: {_few(applied.topics_created)}")
    _say(f"set the passwords of {len(applied.users_set)} users: {_few(applied.users_set)}")
    if applied.users_without_password:
        count = len(applied.users_without_password)
        _say(f"{count} users got no password (an existing one stays): {_few(applied.users_without_password)}")
    _say(f"{applied.acls} ACLs in force")
    return 0


def cmd_passwords(args: argparse.Namespace) -> int:
    """Write a credentials file with a random password for every principal that has none in it yet."""
    plan = _plan(args)
    out: Path = args.out
    current: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    added = [p.user for p in plan.principals if p.user not in current]
    for user in added:
        current[user] = secrets.token_urlsafe(24)
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(current, file, indent=2, sort_keys=True)
        file.write("\n")
    _say(f"{out}: {len(added)} new passwords, {len(current)} in all (keep it in the secret store, not in git)")
    return 0


def add_kafka_acl_commands(sub: Any) -> None:
    """Register ``jiesu kafka-acls ...`` on the top-level command line."""
    top = sub.add_parser("kafka-acls", help="Kafka SCRAM users and ACLs: each service and unit gets what it needs")
    actions = top.add_subparsers(dest="action", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--namespace", default="", help="topic namespace of the deployment (default: none)")
        parser.add_argument("--guide", type=Path, default=CITY_GUIDE, help="the dispatch guide whose units get users")
        parser.add_argument("--jurisdiction", type=Path, default=None, help="GeoJSON whose streets/towns get users")

    plan = actions.add_parser("plan", help="print the principals and ACLs (changes nothing)")
    common(plan)
    plan.set_defaults(run=cmd_plan)

    apply = actions.add_parser(
        "apply",
        help="create topics, users and ACLs as the admin (JIESU_KAFKA_ADMIN_USER / JIESU_KAFKA_ADMIN_PASSWORD)",
        description=f"Passwords come from --credentials and from {PASSWORD_ENV_PREFIX}<USER> variables.",
    )
    common(apply)
    apply.add_argument("--bootstrap", default=os.environ.get("JIESU_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092"))
    apply.add_argument(
        "--security-protocol", default="SASL_PLAINTEXT", choices=["SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT", "SSL"]
    )
    apply.add_argument("--ca-file", type=Path, default=None, help="CA bundle for SASL_SSL")
    apply.add_argument("--credentials", type=Path, default=None, help="JSON file: user name -> password")
    apply.add_argument("--partitions", type=int, default=3)
    apply.add_argument("--replication-factor", type=int, default=1)
    apply.set_defaults(run=cmd_apply)

    words = actions.add_parser("passwords", help="generate missing passwords into a credentials file (mode 600)")
    common(words)
    words.add_argument("--out", type=Path, required=True)
    words.set_defaults(run=cmd_passwords)
