"""The local MongoDB-wire server is started with its oplog prune out of the write path
(see README, the local stack): a prune stepping through the oplog from inside a large
batch insert slowed a 100,000-event rebuild several times over and once hung it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from citydesk.stack import Stack, StackConfig


def test_the_launcher_switches_the_prune_off_without_starting_a_server() -> None:
    import secantus.storage

    import citydesk.mongo_server  # noqa: F401 (importing it must only configure)

    assert secantus.storage._OPLOG_PRUNE_INTERVAL == sys.maxsize


def test_the_stack_starts_the_server_through_the_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[list[str]] = []

    def spawn(self: Stack, name: str, argv: list[str], env: Any = None) -> int:
        started.append(argv)
        return 0

    monkeypatch.setattr(Stack, "_spawn", spawn)
    monkeypatch.setattr(Stack, "_wait", lambda self, name, ready: 0.0)
    Stack(StackConfig(root=tmp_path)).start_mongo()
    [argv] = started
    assert argv[:3] == [sys.executable, "-m", "citydesk.mongo_server"]
