"""The two admin requests aiokafka's admin client lacks: create ACLs in one batch, and upsert SCRAM credentials."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Array,
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    String,
    TaggedFields,
)

from tools.kafka_acls.plan import Grant

# Codes from the Kafka protocol (org.apache.kafka.common.acl / resource).
RESOURCE_TYPE = {"topic": 2, "group": 3, "cluster": 4}
PATTERN_TYPE = {"literal": 3, "prefixed": 4}
OPERATION = {"read": 3, "write": 4, "create": 5, "describe": 8, "describe_configs": 10}
ALLOW = 3
SCRAM_SHA_512 = 2
SCRAM_ITERATIONS = 8192  # the broker refuses fewer than 4096
# aiokafka ships no type information, so mypy sees its protocol base classes as Any (hence the ignores below).


class CreateAclsResponse_v1(Response):  # type: ignore[misc]
    API_KEY = 30
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", Array(("error_code", Int16), ("error_message", String("utf-8")))),
    )


class CreateAclsRequest_v1(RequestStruct):  # type: ignore[misc]
    API_KEY = 30
    API_VERSION = 1
    RESPONSE_TYPE = CreateAclsResponse_v1
    SCHEMA = Schema(
        (
            "creations",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                ("pattern_type", Int8),
                ("principal", String("utf-8")),
                ("host", String("utf-8")),
                ("operation", Int8),
                ("permission_type", Int8),
            ),
        ),
    )


class CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    """CreateAcls (api key 30) v1 for many ACLs at once; every one is ALLOW from any host."""

    API_KEY = 30

    def __init__(self, grants: Sequence[Grant]) -> None:
        self.grants = list(grants)

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        creations = [
            (
                RESOURCE_TYPE[g.resource],
                g.name,
                PATTERN_TYPE[g.pattern],
                f"User:{g.user}",
                "*",
                OPERATION[g.operation],
                ALLOW,
            )
            for g in self.grants
        ]
        return request_struct_class(creations)


class AlterUserScramCredentialsResponse_v0(Response):  # type: ignore[misc]
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class UpsertScramCredentials(Request[AlterUserScramCredentialsRequest_v0]):  # type: ignore[misc]
    """AlterUserScramCredentials (api key 51): set SCRAM-SHA-512 passwords; only the salted hash leaves here."""

    API_KEY = 51

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords

    def build(
        self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]
    ) -> AlterUserScramCredentialsRequest_v0:
        upsertions: list[tuple[Any, ...]] = []
        for user, password in sorted(self.passwords.items()):
            salt = secrets.token_bytes(32)
            salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, SCRAM_ITERATIONS)
            upsertions.append((user, SCRAM_SHA_512, SCRAM_ITERATIONS, salt, salted, {}))
        return request_struct_class([], upsertions, {})
