"""`jiesu up` runs each service in its own process; they stop with it, also when it is killed outright."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx

from tests.e2e.procs import Proc, auth_headers, free_port, processes, wait_ready
from tests.helpers import eventually


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def _environ(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")


def _niceness(pid: int) -> set[int]:
    """The niceness of each of the process's threads (field 19 of /proc/<pid>/task/<tid>/stat)."""
    return {int(stat.read_text().rsplit(")", 1)[1].split()[16]) for stat in Path(f"/proc/{pid}/task").glob("*/stat")}


def _service_pids(log: Path) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"jiesu: (\w+) on http://\S+\s+\(process (\d+);", log.read_text())}


async def test_each_service_has_its_own_process_and_a_killed_up_takes_them_along(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    proc = Proc(["up", "--var", str(tmp_path), "--ports", *map(str, ports)], log=tmp_path / "up.log", env={})
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    with processes(proc):
        for url in urls:
            wait_ready(url, proc=proc)
        pids = _service_pids(proc.log)
        assert set(pids) == {"intake", "dispatch", "evaluation"}
        assert len(set(pids.values())) == 3 and proc.popen is not None and proc.popen.pid not in pids.values()
        for pid in pids.values():  # two malloc arenas per service, unless the user set it (a smaller resident set)
            assert "MALLOC_ARENA_MAX=2" in _environ(pid)
        # Evaluation, off the response path, yields the cores to intake and dispatch under full load: all its
        # threads (the database driver's too) run 10 lower; the others at the priority `jiesu up` was given.
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert _niceness(pids["intake"]) == _niceness(pids["dispatch"]) == {mine}
        assert _niceness(pids["evaluation"]) == {min(mine + 10, 19)}
        assert "CPU priority lowered by 10" in next(
            line for line in proc.log.read_text().splitlines() if "evaluation on" in line
        )
        async with httpx.AsyncClient(timeout=10, headers=auth_headers()) as http:
            answer = await http.post(
                f"{urls[0]}/v1/reports", json={"source": "hotline", "external_id": "p1", "content": "路灯不亮"}
            )
            assert answer.status_code == 201
        proc.kill()

        async def all_gone() -> bool | None:
            return True if not any(_alive(pid) for pid in pids.values()) else None

        await eventually(all_gone, timeout=10, what="the services to stop with the killed jiesu up")
