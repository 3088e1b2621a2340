"""`jiesu up` (what `make up` runs) prints an admin key on its first start only, and that key works."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.procs import Proc, free_port, processes, wait_ready

PRINTED_KEY = re.compile(r"jiesu:\s+(jsk_[A-Za-z0-9_-]+)")


async def test_the_first_start_prints_an_admin_key_that_opens_the_api(tmp_path: Path) -> None:
    var = tmp_path / "var"
    ports = [free_port() for _ in range(3)]
    args = ["up", "--var", str(var), "--ports", *map(str, ports)]
    intake, dispatch, evaluation = (f"http://127.0.0.1:{p}" for p in ports)
    first = Proc(args, log=tmp_path / "first.log", env={})
    with processes(first):
        for url in (intake, dispatch, evaluation):  # each service is a process of its own
            wait_ready(url, proc=first)
        [key] = PRINTED_KEY.findall(first.tail())
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{dispatch}/v1/api-keys")).status_code == 401
            keys = await http.get(f"{dispatch}/v1/api-keys", headers={"Authorization": f"Bearer {key}"})
            assert keys.status_code == 200 and [k["role"] for k in keys.json()] == ["admin"]
            report = {"source": "hotline", "external_id": "up-1", "content": "路灯不亮"}
            posted = await http.post(f"{intake}/v1/reports", json=report, headers={"Authorization": f"Bearer {key}"})
            assert posted.status_code == 201
    again = Proc(args, log=tmp_path / "again.log", env={})
    with processes(again):
        for url in (intake, dispatch, evaluation):
            wait_ready(url, proc=again)
        assert PRINTED_KEY.findall(again.tail()) == []
        async with httpx.AsyncClient(timeout=10) as http:
            keys = await http.get(f"{dispatch}/v1/api-keys", headers={"Authorization": f"Bearer {key}"})
            assert keys.status_code == 200 and len(keys.json()) == 1
