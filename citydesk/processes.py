"""The five services (and the console) as separate processes on loopback: started with
``citydesk serve``, watched through ``/readyz``, stopped or killed one by one. Used by the
demo and by the end-to-end and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from citydesk.stack import stop_group

PORTS: dict[str, int] = {
    "submission": 8101,
    "media": 8102,
    "review": 8103,
    "scoring": 8104,
    "sentiment": 8105,
    "console": 8100,
}
# the five services that own data; the console runs over them and is started by name
SERVICES: tuple[str, ...] = ("submission", "media", "review", "scoring", "sentiment")


class ServiceError(RuntimeError):
    """A service did not become ready."""


@dataclass
class ServiceProcesses:
    """Start and stop services as child processes, each with its own log and pid file."""

    root: Path
    env: dict[str, str]
    ports: dict[str, int] | None = None
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.ports = dict(self.ports or PORTS)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        (self.root / "pids").mkdir(parents=True, exist_ok=True)

    def url(self, name: str) -> str:
        assert self.ports is not None
        return f"http://{self.host}:{self.ports[name]}"

    def _pid_file(self, name: str) -> Path:
        return self.root / "pids" / f"service-{name}.pid"

    def pid(self, name: str) -> int | None:
        path = self._pid_file(name)
        if not path.exists():
            return None
        try:
            pid = int(path.read_text())
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            return None
        return pid

    def start(self, name: str) -> None:
        if self.pid(name) is not None:
            return
        assert self.ports is not None
        log = (self.root / "logs" / f"{name}.log").open("ab")
        env = {**os.environ, **self.env, "CITYDESK_SERVICE_NAME": name}
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "citydesk.cli", "serve", name,
                "--port", str(self.ports[name]), "--host", self.host, "--dir", str(self.root),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )  # fmt: skip
        self._pid_file(name).write_text(str(proc.pid))

    def ready(self, name: str) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url(name)}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, names: tuple[str, ...] | list[str], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                if self.pid(name) is None:
                    raise ServiceError(f"{name} exited while starting:\n{self.tail(name)}")
                if self.ready(name):
                    pending.remove(name)
            time.sleep(0.25)
        if pending:
            raise ServiceError(
                f"not ready after {timeout:.0f}s: {', '.join(pending)}\n"
                + "\n".join(self.tail(n) for n in pending)
            )

    def start_all(self, names: tuple[str, ...] = SERVICES, timeout: float = 90.0) -> None:
        for name in names:
            self.start(name)
        self.wait_ready(names, timeout=timeout)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        pid = self.pid(name)
        if pid is not None:
            stop_group(pid, sig, timeout)
        self._pid_file(name).unlink(missing_ok=True)

    def kill(self, name: str) -> None:
        """kill -9: no shutdown hooks, no final commits."""
        self.stop(name, sig=signal.SIGKILL, timeout=5)

    def stop_all(self) -> None:
        assert self.ports is not None
        for name in self.ports:
            self.stop(name)

    def tail(self, name: str, lines: int = 20) -> str:
        path = self.root / "logs" / f"{name}.log"
        if not path.exists():
            return f"({name}: no log)"
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {name} ---\n" + "\n".join(text)
