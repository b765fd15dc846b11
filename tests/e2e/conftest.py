"""The whole city as separate processes over the real stack: five services started with
``citydesk serve``, driven over HTTP and the intake topics like county systems and
people do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citydesk.processes import SERVICES, ServiceProcesses
from citydesk.stack import free_port


def start_city(
    root: Path,
    env: dict[str, str],
    *,
    database_prefix: str = "city",
    settings: dict[str, str] | None = None,
    timeout: float = 90.0,
) -> ServiceProcesses:
    """The five services as processes on free ports, each with its own databases
    (``database_prefix`` and a free number); ``settings`` are added to their environment."""
    ports = {name: free_port() for name in SERVICES}
    processes = ServiceProcesses(
        root,
        env={
            "CITYDESK_MONGO_DATABASE_PREFIX": f"{database_prefix}{free_port()}",
            **env,
            "CITYDESK_ENVIRONMENT": "test",
            "CITYDESK_MEDIA_PUBLIC_URL": f"http://127.0.0.1:{ports['media']}",
            "CITYDESK_REVIEW_PUBLIC_URL": f"http://127.0.0.1:{ports['review']}",
            "CITYDESK_SENTIMENT_ESCALATION_POLL_SECONDS": "1",
            **(settings or {}),
        },
        ports=ports,
    )
    processes.start_all(timeout=timeout)
    return processes


# Package scope: the city stops when the e2e tests end, so its consumers do not answer
# other tests' events (and fill the shared dead-letter topics) afterwards.
@pytest.fixture(scope="package")
def city(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    processes = start_city(tmp_path_factory.mktemp("city"), stack_env)
    try:
        yield processes
    finally:
        processes.stop_all()
