"""Starting jiesu as real processes for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from shared.auth.roles import ROLES
from shared.auth.settings import AuthSettings
from shared.auth.tokens import sign
from shared.guide import SEED_GUIDE

ROOT = Path(__file__).resolve().parents[2]
# The processes accept tokens signed with this test-only secret; `auth_headers()` makes one for the clients.
JWT_SECRET = "e2e-only-secret-of-the-jiesu-test-processes"


def auth_headers(role: str = "admin", **scope: list[str]) -> dict[str, str]:
    """Headers with a signed token of a role (admin by default) that the test processes accept."""
    token = sign({"sub": f"e2e-{role}", "role": role, **scope}, AuthSettings(jwt_secret=JWT_SECRET))
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Proc:
    """One jiesu process with its log file."""

    def __init__(self, args: list[str], *, log: Path, env: Mapping[str, str]) -> None:
        self.args = args
        self.log = log
        # The seed guide unless the test brings its own: the tests name its kinds and units.
        # A credential store beside the log (`up` keeps its own under --var) and the test token secret.
        self.env = {
            **os.environ,
            "JIESU_DISPATCH_GUIDE_PATH": str(SEED_GUIDE),
            "JIESU_AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{log.parent.resolve() / 'auth.db'}",
            "JIESU_AUTH_JWT_SECRET": JWT_SECRET,
            # Tests poll fast; the rate limit has its own tests.
            "JIESU_AUTH_RATE_PER_SECOND": json.dumps(dict.fromkeys(ROLES, 100_000)),
            **env,
        }
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as handle:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=handle,
                stderr=handle,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up, as in a crash."""
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def wait_ready(url: str, *, proc: Proc, timeout: float = 60.0) -> None:
    """Wait for a service's /readyz, failing with its log if it dies or never gets ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen is not None and proc.popen.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s:\n{proc.tail()}")


@contextmanager
def processes(*procs: Proc) -> Iterator[tuple[Proc, ...]]:
    """Start processes and always stop them."""
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in reversed(procs):
            proc.stop()
