"""Starting jiesu as real processes for end-to-end tests."""

from __future__ import annotations

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

from shared.guide import SEED_GUIDE

ROOT = Path(__file__).resolve().parents[2]


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
        self.env = {**os.environ, "JIESU_DISPATCH_GUIDE_PATH": str(SEED_GUIDE), **env}
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
