"""Fuzz the client control path of a live hub: arbitrary bytes, text and JSON never crash it, and a watching client
sees every event, in order, while the fuzzing goes on."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from common.frames import event_from_object
from common.hub import Hub
from common.session import TopicPolicy
from common.settings import HubSettings
from tests.helpers import http_get

ACTIONS = ["auth", "subscribe", "unsubscribe", "AUTH", "", "dance"]
TOPICS = ["T.AAPL", "T.*", "*", "Q.MSFT", "100Ms.AAPL", "0Ms.X", "XT.BTC-USD", "T.", ".X", "T.aapl", "A.*", ",", " "]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
commands = st.fixed_dictionaries(
    {"action": st.sampled_from(ACTIONS) | st.text(max_size=10)},
    optional={"params": st.lists(st.sampled_from(TOPICS) | st.text(max_size=12), max_size=5).map(",".join)
              | json_values},
).map(json.dumps)
messages = st.lists(
    commands | st.binary(max_size=200) | st.text(max_size=200) | json_values.map(json.dumps)
    | st.sampled_from(['{"action":"auth","params":"k"}', '{"action":"subscribe","params":"T.AAPL,*"}']),
    min_size=1, max_size=8,
)


class LiveHub:
    """A hub on its own event loop thread, a watcher subscribed to T.AAPL, and a way to publish numbered trades."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.hub = Hub("fuzz", HubSettings(), TopicPolicy(), structlog.get_logger())
        self.port = self._call(self.hub.start("127.0.0.1", 0))
        self.seq = 0
        self.watcher = sync_connect(f"ws://127.0.0.1:{self.port}/stocks").__enter__()
        self.watcher.recv()
        self.watcher.send('{"action":"auth","params":"k"}')
        self.watcher.recv()
        self.watcher.send('{"action":"subscribe","params":"T.AAPL"}')
        self.watcher.recv()
        self.seen: list[int] = []

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def publish(self) -> None:
        self.seq += 1
        raw = b'{"ev":"T","sym":"AAPL","p":1.5,"s":1,"t":1,"q":%d}' % self.seq
        self.loop.call_soon_threadsafe(self.hub.publish, "stocks", [event_from_object(raw)])

    def drain_watcher(self) -> None:
        while len(self.seen) < self.seq:
            for event in json.loads(self.watcher.recv(timeout=5)):
                self.seen.append(event["q"])

    def close(self) -> None:
        self.watcher.close()
        self._call(self.hub.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def live_hub():
    hub = LiveHub()
    yield hub
    hub.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=messages)
def test_arbitrary_client_input_never_crashes_the_hub_nor_gaps_other_clients(live_hub, batch):
    with sync_connect(f"ws://127.0.0.1:{live_hub.port}/stocks", max_size=None) as fuzzer:
        fuzzer.recv(timeout=5)  # connected
        try:
            for message in batch:
                live_hub.publish()
                fuzzer.send(message)
            live_hub.publish()
            fuzzer.send('{"action":"subscribe","params":"Q.MSFT"}')  # still answering, in order?
            while True:
                frame = json.loads(fuzzer.recv(timeout=5))
                assert all(isinstance(e, dict) and "ev" in e for e in frame)
                if any(e.get("message") in ("subscribed to: Q.MSFT", "authentication required") for e in frame):
                    break
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code in (1008, 1009), closed  # auth failure or too big
    live_hub.drain_watcher()
    assert live_hub.seen == list(range(1, live_hub.seq + 1))  # the watcher saw every event, in order
    assert http_get(live_hub.port, "/health")[0] == 200
