"""The fast layer: pure logic and handler wiring, with no server of any kind.

Nothing here may reach Kafka, MongoDB or S3. The stack fixtures of ``tests/conftest.py``
are replaced by ones that fail at once, and every TCP connection a test would open is
refused, so a test that quietly needs a server fails here instead of slowing the layer
down. ``make unit`` runs this folder alone; ``make test`` runs it first.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from citydesk.stack import local_principals
from shared.bus_auth import write_local_keys

NO_SERVER = "tests/unit runs without servers; move a test that needs one out of tests/unit"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: the fast layer, no server (tests/unit)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def stack_env() -> NoReturn:
    pytest.fail(NO_SERVER)


@pytest.fixture(scope="session")
def durable_stack() -> NoReturn:
    pytest.fail(NO_SERVER)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse every outgoing TCP or UDP connection (a Unix socket pair stays possible:
    the event loop wakes itself through one)."""

    def refuse(sock: socket.socket, address: Any) -> NoReturn:
        raise ConnectionRefusedError(f"{NO_SERVER} (tried {address!r})")

    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            refuse(sock, address)
        original_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            refuse(sock, address)
        return original_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield


@pytest.fixture(scope="session")
def bus_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keyring and a signing key for every principal of the local stack, in a folder of
    this run (no broker needed to sign or verify)."""
    folder = tmp_path_factory.mktemp("bus-keys")
    write_local_keys(folder, local_principals())
    return folder
