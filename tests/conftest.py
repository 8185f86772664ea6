"""Fixtures for end-to-end tests: tiers started as real processes on 127.0.0.1, stopped at teardown."""

from __future__ import annotations

import pytest

from tests.helpers import Proc, abort_open_clients, free_port


@pytest.fixture
def procs(tmp_path):
    """Start tiers: ``procs.start(name, module, args=[...], env={...})``; all stopped at teardown."""

    class Starter:
        def __init__(self) -> None:
            self.started: list[Proc] = []

        def start(self, name: str, module: str, args=(), env=None, port: int | None = None) -> Proc:
            p = Proc(name, module, port or free_port(), list(args), dict(env or {}), tmp_path)
            self.started.append(p)
            return p.wait_healthy()

    starter = Starter()
    yield starter
    try:
        abort_open_clients()
    finally:  # whatever happens above, no tier outlives its test
        for p in reversed(starter.started):
            p.stop()
