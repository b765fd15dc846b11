"""`make bench`: one run on this machine, the limits first, then each service beside them.

Starts a fresh local stack on free ports, measures the raw broker produce/consume rates,
the raw MongoDB insert rate and the raw S3 put rate, then runs each service's benchmark
against the same stack and prints every rate with its ratio to the raw one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path
from typing import Any

from citydesk.bench.raw import broker_rates, mongo_rates, s3_rate
from citydesk.processes import ServiceProcesses
from citydesk.stack import Stack, StackConfig, free_port
from shared.settings import Settings

SERVICE_BENCHES = ("submission", "copies", "media", "review", "scoring", "sentiment")


def settings_from(env: dict[str, str], service_name: str = "bench") -> Settings:
    """The shared settings a benchmark runs with, from the stack's ``CITYDESK_*`` values."""
    values = {
        k.removeprefix("CITYDESK_").lower(): v for k, v in env.items() if k.startswith("CITYDESK_")
    }
    return Settings.model_validate({**values, "service_name": service_name})


@contextlib.asynccontextmanager
async def one_service(env: dict[str, str], name: str, database: str) -> AsyncIterator[str]:
    """``name`` running as its own process on a free port with its own database, ready;
    yields its base URL and stops it afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as root:
        processes = ServiceProcesses(
            Path(root), {**env, "CITYDESK_MONGO_DATABASE": database}, ports={name: free_port()}
        )
        processes.start(name)
        try:
            await asyncio.to_thread(processes.wait_ready, [name], 60.0)
            yield processes.url(name)
        finally:
            processes.stop(name)


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = platform.python_version()
    return f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, Python {python}"


async def run_suite(env: dict[str, str], only: tuple[str, ...] = SERVICE_BENCHES) -> dict[str, Any]:
    os.environ.update(env)
    settings = Settings(service_name="bench")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "raw": {
            "broker": await broker_rates(settings),
            "mongodb": await mongo_rates(settings),
            "s3": await asyncio.to_thread(s3_rate, settings),
        },
    }
    for name in only:
        started = time.perf_counter()
        module = import_module(f"citydesk.bench.{name}")
        try:
            results[name] = await module.run(env)
        except Exception as exc:  # one failing bench must not hide the others' figures
            results[name] = {"error": f"{exc.__class__.__name__}: {exc}"}
        results[name]["bench_seconds"] = round(time.perf_counter() - started, 1)
    return results


def on_temporary_stack(
    run: Callable[[dict[str, str]], Coroutine[Any, Any, dict[str, Any]]],
) -> dict[str, Any]:
    """Run one benchmark against a fresh local stack (Kafka in memory) on free ports."""
    with tempfile.TemporaryDirectory(prefix="citydesk-bench-") as folder:
        config = StackConfig(
            root=Path(folder), kafka_port=free_port(), mongo_port=free_port(), s3_port=free_port(),
            s3_metrics_port=free_port(), kafka_storage="memory",
        )  # fmt: skip
        stack = Stack(config)
        stack.up()
        try:
            return asyncio.run(run(config.env()))
        finally:
            stack.down()


def run_alone(run: Callable[[dict[str, str]], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    """What ``python -m citydesk.bench.<service>`` does: one benchmark, printed as JSON."""
    print(json.dumps(on_temporary_stack(run), indent=2, ensure_ascii=False, default=str))


def main(only: tuple[str, ...] = SERVICE_BENCHES, out: Path | None = None) -> dict[str, Any]:
    results = on_temporary_stack(lambda env: run_suite(env, only))
    text = json.dumps(results, ensure_ascii=False, indent=2, default=str)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)
    return results
