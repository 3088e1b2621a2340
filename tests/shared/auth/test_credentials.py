"""API keys, signed tokens, the token endpoint, rate limits and the audit log, through the running services."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import event

from shared.auth import MIGRATIONS
from shared.auth.cli import first_admin_key
from shared.events import utcnow
from shared.migrate import upgrade_async
from tests.e2e.procs import ROOT
from tests.helpers import credential
from tests.shared.auth.apps import service_app


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def stored_rows(folder: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(folder / "auth.db") as db:
        return list(db.execute("SELECT * FROM api_keys"))


async def test_a_key_is_shown_once_stored_hashed_and_works_on_every_service(tmp_path: Path) -> None:
    async with service_app("dispatch", tmp_path) as (app, dispatch), service_app("evaluation", tmp_path) as (_, other):
        admin = await credential(app, "admin")
        made = await dispatch.post("/v1/api-keys", json={"name": "城市大脑", "role": "analyst"}, headers=admin)
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        assert key.startswith(f"jsk_{made.json()['id']}_")
        listed = (await dispatch.get("/v1/api-keys", headers=admin)).json()
        assert {k["id"] for k in listed} >= {made.json()["id"]}
        assert all("key" not in k for k in listed) and key not in str(listed)
        assert (await other.get("/v1/metrics", headers=bearer(key))).status_code == 200
        assert (await other.post("/v1/feedback", json={}, headers=bearer(key))).status_code == 403
    rows = await asyncio.to_thread(stored_rows, tmp_path)
    assert rows and not any(key in str(row) or key.split("_", 2)[2] in str(row) for row in rows)


async def test_a_revoked_key_is_refused_at_once_here_and_after_the_cache_time_elsewhere(tmp_path: Path) -> None:
    async with (
        service_app("dispatch", tmp_path) as (app, dispatch),
        service_app("evaluation", tmp_path, cache_seconds=0) as (_, other),
    ):
        admin = await credential(app, "admin")
        made = (await dispatch.post("/v1/api-keys", json={"name": "n", "role": "staff"}, headers=admin)).json()
        assert (await dispatch.get("/v1/triage", headers=bearer(made["key"]))).status_code == 200
        assert (await other.get("/v1/metrics", headers=bearer(made["key"]))).status_code == 200
        revoked = await dispatch.delete(f"/v1/api-keys/{made['id']}", headers=admin)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert (await dispatch.get("/v1/triage", headers=bearer(made["key"]))).status_code == 401
        assert (await other.get("/v1/metrics", headers=bearer(made["key"]))).status_code == 401
        assert (await dispatch.delete("/v1/api-keys/nope", headers=admin)).status_code == 404


async def test_requests_arriving_together_share_one_lookup_of_their_key(tmp_path: Path) -> None:
    async with service_app("evaluation", tmp_path, cache_seconds=0) as (app, client):
        headers = await credential(app, "analyst")
        lookups: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
            if "FROM api_keys" in statement:
                lookups.append(statement)

        engine = app.state.auth.store.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            answers = await asyncio.gather(*(client.get("/v1/metrics", headers=headers) for _ in range(40)))
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert [a.status_code for a in answers] == [200] * 40
    # Without sharing, each of the 40 requests takes a pooled connection for its own read of the key.
    assert 1 <= len(lookups) < 20


async def test_a_scoped_role_needs_its_scope_and_an_expiry_needs_a_zone(tmp_path: Path) -> None:
    async with service_app("dispatch", tmp_path) as (app, dispatch):
        admin = await credential(app, "admin")
        unscoped = await dispatch.post("/v1/api-keys", json={"name": "n", "role": "unit"}, headers=admin)
        assert unscoped.status_code == 422 and unscoped.json()["errors"][0]["field"] == "units"
        naive = {"name": "n", "role": "hotline", "expires_at": "2027-01-01T00:00:00"}
        answer = await dispatch.post("/v1/api-keys", json=naive, headers=admin)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "expires_at"
        assert [k["role"] for k in (await dispatch.get("/v1/api-keys", headers=admin)).json()] == ["admin"]


async def test_the_token_endpoint_swaps_a_key_for_a_token_every_service_accepts(tmp_path: Path) -> None:
    async with service_app("dispatch", tmp_path) as (app, dispatch), service_app("evaluation", tmp_path) as (_, other):
        admin = await credential(app, "admin")
        made = (await dispatch.post("/v1/api-keys", json={"name": "n", "role": "analyst"}, headers=admin)).json()
        form = {"grant_type": "client_credentials", "client_id": made["id"], "client_secret": made["key"]}
        issued = await dispatch.post("/oauth/token", data=form)
        assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
        token = issued.json()
        assert token["token_type"] == "Bearer" and 0 < token["expires_in"] <= 15 * 60
        claims = jwt.decode(token["access_token"], options={"verify_signature": False})
        assert (claims["role"], claims["sub"]) == ("analyst", made["id"])
        assert (await other.get("/v1/rankings", headers=bearer(token["access_token"]))).status_code == 200
        assert (await other.post("/v1/feedback", json={}, headers=bearer(token["access_token"]))).status_code == 403

        wrong = await dispatch.post("/oauth/token", data=form | {"client_secret": made["key"] + "x"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        assert made["key"] not in wrong.text
        other_id = await dispatch.post("/oauth/token", data=form | {"client_id": "someone-else"})
        assert other_id.status_code == 401
        grant = await dispatch.post("/oauth/token", data=form | {"grant_type": "password"})
        assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"

        await dispatch.delete(f"/v1/api-keys/{made['id']}", headers=admin)
        assert (await dispatch.get("/v1/guide", headers=bearer(token["access_token"]))).status_code == 401


async def test_a_token_signed_with_the_configured_public_key_is_accepted(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"sub": "idp-client-7", "role": "analyst", "iss": "jiesu", "aud": "jiesu", "exp": utcnow()}
    claims["exp"] = utcnow() + timedelta(minutes=5)
    async with service_app("evaluation", tmp_path, jwt_public_key=public.decode(), jwt_algorithms=["ES256"]) as (
        _,
        client,
    ):
        good = jwt.encode(claims, private, algorithm="ES256")
        stranger = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
        assert (await client.get("/v1/metrics", headers=bearer(good))).status_code == 200
        assert (await client.get("/v1/metrics", headers=bearer(stranger))).status_code == 401


async def test_a_spent_rate_limit_is_429_with_retry_after_and_audited(tmp_path: Path) -> None:
    async with service_app("dispatch", tmp_path, rate_burst_seconds=1.0) as (app, client):
        admin = await credential(app, "admin")
        slow = await credential(app, "staff", rate_per_second=1.0)
        statuses = [(await client.get("/v1/guide", headers=slow)).status_code for _ in range(3)]
        assert statuses[0] == 200 and 429 in statuses[1:]
        limited = await client.get("/v1/guide", headers=slow)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["content-type"] == "application/problem+json"
        slow_id = slow["Authorization"].split("_")[1]
        rows = (await client.get("/v1/audit", params={"credential_id": slow_id}, headers=admin)).json()["items"]
        assert rows and {(r["status"], r["outcome"], r["role"]) for r in rows} == {(429, "denied", "staff")}


async def test_the_rate_of_a_role_comes_from_the_settings(tmp_path: Path) -> None:
    rates = {"analyst": 1.0}
    async with service_app("dispatch", tmp_path, rate_per_second=rates, rate_burst_seconds=1.0) as (app, client):
        analyst = await credential(app, "analyst", rate_per_second=None)
        statuses = [(await client.get("/v1/guide", headers=analyst)).status_code for _ in range(3)]
    assert statuses[0] == 200 and 429 in statuses[1:]


async def test_a_request_without_credential_is_401_and_audited(tmp_path: Path) -> None:
    async with service_app("dispatch", tmp_path) as (app, client):
        answer = await client.get("/v1/cases")
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == 'Bearer realm="jiesu"'
        assert answer.json()["type"] == "https://jiesu.dev/problems/unauthorized"
        admin = await credential(app, "admin")
        [row] = (await client.get("/v1/audit", params={"outcome": "denied"}, headers=admin)).json()["items"]
    assert (row["credential_id"], row["status"], row["path"], row["action"]) == (None, 401, "/v1/cases", "cases:read")
    assert row["detail"] == {"reason": "no credential"}


def jiesu(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JIESU_AUTH_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "services.cli", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_keys_are_made_listed_and_revoked_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    made = await asyncio.to_thread(
        jiesu, "keys", "create", "--role", "unit", "--unit", "DEPT-UM", "--expires", "30d", database_url=url
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    key_id = key.split("_")[1]
    assert key.startswith("jsk_") and "shown only now" in made.stderr
    listed = await asyncio.to_thread(jiesu, "keys", "list", database_url=url)
    assert key_id in listed.stdout and "unit" in listed.stdout and "units=DEPT-UM" in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout
    revoked = await asyncio.to_thread(jiesu, "keys", "revoke", key_id, database_url=url)
    assert revoked.returncode == 0
    assert "revoked" in (await asyncio.to_thread(jiesu, "keys", "list", database_url=url)).stdout
    unscoped = await asyncio.to_thread(jiesu, "keys", "create", "--role", "grid", database_url=url)
    assert unscoped.returncode == 2 and "grids" in unscoped.stderr


async def test_the_first_start_makes_one_admin_key(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    first = await asyncio.to_thread(first_admin_key, url)
    again = await asyncio.to_thread(first_admin_key, url)
    assert first is not None and first.startswith("jsk_") and again is None
    async with service_app("dispatch", tmp_path) as (_, client):
        assert (await client.get("/v1/api-keys", headers=bearer(first))).status_code == 200


async def test_the_store_and_audit_log_work_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    await upgrade_async(script_location=MIGRATIONS, database_url=pg_url)
    async with service_app("dispatch", tmp_path, database_url=pg_url) as (app, client):
        admin = await credential(app, "admin")
        made = await client.post(
            "/v1/api-keys", json={"name": "pg", "role": "unit", "units": ["DEPT-UM"]}, headers=admin
        )
        unit = bearer(made.json()["key"])
        assert (await client.get("/v1/cases", headers=unit)).status_code == 200
        assert (await client.get("/v1/triage", headers=unit)).status_code == 403
        rows = (await client.get("/v1/audit", params={"credential_id": made.json()["id"]}, headers=admin)).json()
    assert [(r["status"], r["path"]) for r in rows["items"]] == [(403, "/v1/triage")]
