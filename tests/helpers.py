"""Helpers shared by the end-to-end tests: real processes on 127.0.0.1, real sockets, waits on conditions (never sleeps)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import websockets

from firehose_proxy.sources.recording.format import FileReader, recording_files

if TYPE_CHECKING:
    from massive import WebSocketClient

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def status(port: int) -> dict:
    return json.loads(http_get(port, "/status")[2])


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a process still starting refuses connections
            last_exc = exc
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


async def async_wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Proc:
    """A tier started as a real process; stopped (SIGTERM, then kill) at teardown."""

    def __init__(self, name: str, module: str, port: int, args: list[str], env: dict[str, str], tmp: Path) -> None:
        self.name, self.port = name, port
        self.log_path = tmp / f"{name}-{port}.log"
        self._log = open(self.log_path, "wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TICKFAN_", "POLYGON_", "UPSTREAM_"))}
        full_env.update({"PYTHONUNBUFFERED": "1", "LOG_LEVEL": "info"}, **env)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port), *args],
            cwd=tmp, env={**full_env, "PYTHONPATH": str(ROOT)}, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout: float = 15.0) -> "Proc":
        def healthy():
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")
            return http_get(self.port, "/health", timeout=0.5)[0] == 200

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if healthy():
                    return self
            except AssertionError:
                raise
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.02)
        raise AssertionError(f"{self.name} not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 6.0) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


class WsClient:
    """A plain websockets client that collects every event it is sent, frame by frame."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[list[dict]] = []
        self.events: list[dict] = []

    async def send(self, obj) -> None:
        await self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def recv_frame(self, timeout: float = 5.0) -> list[dict]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.frames.append(frame)
        self.events.extend(frame)
        return frame

    async def until(self, predicate, timeout: float = 10.0, what: str = "events") -> list[dict]:
        """Receive until ``predicate(self.events)`` is truthy; returns the events."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {self.events[-5:]}")
            try:
                await self.recv_frame(left)
            except asyncio.TimeoutError:
                continue
        return self.events

    def data(self) -> list[dict]:
        return [e for e in self.events if e.get("ev") != "status"]


OPEN_CLIENTS: list[WsClient] = []  # cut at teardown, so tiers stopping do not wait out their close timeout


def abort_open_clients() -> None:
    while OPEN_CLIENTS:
        transport = OPEN_CLIENTS.pop().ws.transport
        if transport is None:
            continue
        sock = transport.get_extra_info("socket")
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)  # works after the test's event loop is closed, too
        except OSError:
            pass


async def connect(port: int, path: str = "/stocks", key: str | None = "k", **kw) -> WsClient:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}{path}", **kw)
    client = WsClient(ws)
    OPEN_CLIENTS.append(client)
    assert await client.recv_frame() == [{"ev": "status", "status": "connected", "message": "Connected Successfully"}]
    if key is not None:
        await client.send({"action": "auth", "params": key})
        (reply,) = await client.recv_frame()
        assert reply["status"] == "auth_success", reply
    return client


def trade(sym: str, price: str = "1.50", q: int = 1) -> str:
    # prices written with trailing zeros on purpose: they must arrive byte-for-byte
    return f'{{"ev":"T","sym":"{sym}","x":4,"i":"{q}","z":3,"p":{price},"s":100,"c":[0,12],"t":1536036818784,"q":{q}}}'


def quote(sym: str, q: int = 1) -> str:
    return f'{{"ev":"Q","sym":"{sym}","bx":4,"bp":114.120,"bs":1,"ax":7,"ap":114.130,"as":1,"c":0,"t":1536036818784,"q":{q}}}'


async def until_upstream_has(up, topics: set[str], path: str = "/stocks"):
    await async_wait_for(lambda: topics <= up.subscriptions.get(path, set()), what=f"upstream subscribed to {topics}")


async def run_client(client: WebSocketClient, done) -> list:
    got: list = []

    async def handle(msgs):
        if isinstance(msgs, list):
            got.extend(msgs)  # parsed models
        else:
            got.append(msgs)  # raw=True: one whole frame
        if done(got):
            raise _Done

    try:
        await asyncio.wait_for(client.connect(handle), 20)
    except _Done:
        pass
    finally:
        if client.websocket is not None:
            await client.close()
    return got


class _Done(Exception):
    pass


class Log:
    """A structlog stand-in that keeps every call, so tests can read what was logged."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []

    def bind(self, **kw):
        return self

    def __getattr__(self, level):
        return lambda event, **kw: self.calls.append((level, event, kw))

    def text(self) -> str:
        return repr(self.calls)


def read_all(path) -> list[tuple]:
    """Every record of a recording (file or directory) as ``(cluster, receive ns, frame)``, in order."""
    return [tuple(r) for f in recording_files(path) for batch in FileReader(f).batches() for r in batch]
