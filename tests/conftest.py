"""Fixtures over real servers.

By default the suite starts the embedded local stack (Tansu, SecantusDB, the JuiceFS S3
gateway) on free loopback ports in a temporary folder. With
``CITYDESK_TEST_BACKEND=testcontainers`` and a reachable Docker engine it starts Kafka,
MongoDB and MinIO containers instead. Either way the fixtures below hand the same
settings to the tests, as ``CITYDESK_*`` environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from citydesk.stack import KAFKA_STORE_ROLES, Stack, StackConfig, free_port, free_ports


def _local_stack(root: Path, kafka_storage: str) -> Stack:
    config = StackConfig(
        root=root,
        kafka_port=free_port(),
        mongo_port=free_port(),
        s3_port=free_port(),
        s3_metrics_port=free_port(),
        kafka_store_ports=free_ports(len(KAFKA_STORE_ROLES)),
        kafka_storage=kafka_storage,  # type: ignore[arg-type]
    )
    stack = Stack(config)
    stack.up()
    return stack


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The servers every test talks to, as CITYDESK_* settings (also set in os.environ)."""
    backend = os.environ.get("CITYDESK_TEST_BACKEND", "local")
    saved = dict(os.environ)
    if backend == "testcontainers":
        from tests.containers import container_stack

        with container_stack() as env:
            os.environ.update(env)
            os.environ["CITYDESK_ENVIRONMENT"] = "test"
            yield env
    else:
        stack = _local_stack(tmp_path_factory.mktemp("stack"), kafka_storage="memory")
        env = stack.config.env()
        os.environ.update(env)
        os.environ["CITYDESK_ENVIRONMENT"] = "test"
        try:
            yield env
        finally:
            stack.down()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def durable_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A separate local stack with Kafka on durable (S3) storage, for restart tests. Per
    module: once Tansu has written to it, its SeaweedFS store keeps about a fifth of a core
    busy, which the rest of the suite should not pay for."""
    stack = _local_stack(tmp_path_factory.mktemp("durable"), kafka_storage="s3")
    try:
        yield stack
    finally:
        stack.down()
