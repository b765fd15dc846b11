"""The container image cannot be built here (no Docker engine); these checks keep the
Dockerfile and .dockerignore in step with the code and the chart."""

from __future__ import annotations

import fnmatch
import re

from tests.deploy.tools import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions(keyword: str) -> list[str]:
    return [
        line.split(maxsplit=1)[1]
        for line in DOCKERFILE.splitlines()
        if line.startswith(f"{keyword} ")
    ]


def _ignored(path: str) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (last match wins)."""
    ignored = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes) or fnmatch.fnmatch(
            parts[-1], pattern
        ):
            ignored = not negate
    return ignored


def test_image_builds_from_python_311_slim_in_two_stages_and_runs_as_non_root() -> None:
    stages = _instructions("FROM")
    assert len(stages) == 2 and all(stage.startswith("python:3.11-slim") for stage in stages)
    (user,) = _instructions("USER")
    assert not user.startswith(("0", "root"))
    # media's ffmpeg comes inside the imageio-ffmpeg wheel, not from the system
    installs = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    assert not any("ffmpeg" in line for line in installs)
    assert '"imageio-ffmpeg==' in (REPO / "pyproject.toml").read_text()


def test_image_command_serves_a_service_the_cli_knows() -> None:
    from citydesk.cli import SERVICES

    (command,) = _instructions("CMD")
    match = re.fullmatch(
        r'\["citydesk", "serve", "(\w+)", "--host", "0.0.0.0", "--port", "\d+"\]', command
    )
    assert match and match.group(1) in SERVICES


def test_build_context_holds_what_the_image_copies_and_nothing_local() -> None:
    for source in (
        "pyproject.toml",
        "README.md",
        "citydesk/cli.py",
        "shared/data/city.yaml",
        "services/review/app.py",
        "services/scoring/rules.yaml",
    ):
        assert not _ignored(source), source
    for local in (
        ".venv/bin/python",
        ".stack/stack.json",
        ".git/HEAD",
        "tests/conftest.py",
        "deploy/helm/citydesk/Chart.yaml",
        "shared/__pycache__/events.cpython-311.pyc",
    ):
        assert _ignored(local), local
    for copied in _instructions("COPY"):
        if "--from=" in copied:
            continue
        *sources, _ = copied.split()
        for source in sources:
            assert (REPO / source).exists() and not _ignored(source), source
