"""The firehose's Pyth Hermes source (DESIGN §3): ``PY`` demand in, ``PY`` frames out. The asyncio shell.

Demand arrives as ``PY.<ticker>`` topics per cluster (reference-counted, released after the upstream grace like
Polygon topics). The feed list (``/v2/price_feeds``, cached, refreshed every ``refresh_s``) resolves them to feed ids
(``PY.*`` = every feed of the cluster); a topic Hermes does not publish is told to its subscribers as
``status:error`` naming it. The union of wanted ids is streamed from ``/v2/updates/price/stream`` over SSE
(``httpx`` + ``httpx-sse``: ``:`` keep-alives ignored, multi-line ``data:`` joined), at most ``MAX_IDS_PER_STREAM`` ids
per stream. A change of demand reopens the streams after a short debounce, new ones before old ones close
(updates seen twice are dropped by slot, so the switch has neither gap nor duplicate). A stream that ends —
Hermes closes them after 24 h, proxies drop them — or fails is reopened with backoff and jitter, its subscribers
told ``upstream_down`` / ``upstream_restored``. ``event: error`` events are counted and logged. A rejected key
(401/403) stops the source with a clear error, never a retry loop. The key is sent as a Bearer header, never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Callable, Iterable

import httpx
import msgspec
from httpx_sse import SSEError, aconnect_sse

from common import protocol
from common.backoff import Backoff
from common.clock import monotonic_ms
from common.clusters import PYTH_CODE
from common.demand import TopicDemand
from common.frames import Frame
from common.metrics import Metrics
from common.topics import Topic
from firehose_proxy.sources.pyth.feeds import FeedCatalog, normalize_id
from firehose_proxy.sources.pyth.updates import UpdateDecoder, UpdateError

NOTICE_KEY = "pyth"  # the hub notice of a Pyth outage, per cluster
MAX_IDS_PER_STREAM = 100  # ~7 KB of query string: well under what servers and proxies accept
RESTREAM_DEBOUNCE_S = 0.2
SWITCH_TIMEOUT_S = 10.0  # a restream closes the old streams once the new ones answered, or after this
STABLE_AFTER_S = 10.0  # a stream that lived this long resets its backoff
READ_TIMEOUT_S = 60.0  # Hermes sends a keep-alive every 15 s: silence this long means a dead stream
FEEDS_PATH = "/v2/price_feeds"
STREAM_PATH = "/v2/updates/price/stream"

Publish = Callable[[str, Frame], None]
Tell = Callable[[str, bytes, Callable[[Topic], bool]], int]


class _Fatal(Exception):
    """Hermes refused the key: stop, do not retry."""


class _Retry(Exception):
    """An answer worth a reconnect with backoff."""


class _Stream:
    __slots__ = ("ids", "task", "opened", "state", "connects", "was_up", "down", "down_since")

    def __init__(self, ids: tuple[str, ...]) -> None:
        self.ids = ids
        self.task: asyncio.Task | None = None
        self.opened = asyncio.Event()
        self.state = "connecting"
        self.connects = 0
        self.was_up = False
        self.down = False
        self.down_since = 0.0


def _key(cluster: str, ticker: str) -> str:
    return f"{cluster}/{ticker}"


def _split(key: str) -> tuple[str, str]:
    cluster, _, ticker = key.partition("/")
    return cluster, ticker


class PythSource:
    def __init__(self, base_url: str, api_key: str, log, metrics: Metrics, grace_ms: int, publish: Publish,
                 tell: Tell, refresh_s: float = 900.0, static: dict[str, list[str]] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, notices=None) -> None:
        self.base_url = base_url.rstrip("/")
        self.log = log.bind(upstream="pyth", url=self.base_url)
        self.metrics = metrics
        self.publish = publish
        self.tell = tell
        self.notices = notices  # post_notice / withdraw_notice: outages held for late subscribers (the hub)
        self.refresh_s = refresh_s
        statics = [_key(c, t) for c, tickers in (static or {}).items() for t in tickers]
        self.demand = TopicDemand(grace_ms, statics)
        self.catalog: FeedCatalog | None = None
        self.decoder = UpdateDecoder(FeedCatalog())
        self.state = "idle"
        self.last_error = ""
        self.rejected: set[str] = set()  # ids Hermes answered 404 for, until the next feed list
        self._told_unknown: set[str] = set()
        self._streams: dict[tuple[str, ...], _Stream] = {}
        self._tasks: set[asyncio.Task] = set()
        self._catalog_task: asyncio.Task | None = None
        self._restream_handle: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=self.base_url, headers=headers, transport=transport,
                                        timeout=httpx.Timeout(10.0, read=READ_TIMEOUT_S))
        for counter, help in (
            ("pyth_updates", "PY events published from Pyth Hermes."),
            ("pyth_stream_errors", "'event: error' events received on Hermes streams."),
            ("pyth_bad_updates", "Hermes payloads that were not price updates (skipped)."),
            ("pyth_reconnects", "Hermes streams reopened after they ended or failed."),
        ):
            metrics.describe(counter, help)

    # -- demand ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start now if static topics are configured (else on the first demand)."""
        if self.demand.wanted:
            self._ensure_catalog()

    def want(self, cluster: str, tickers: Iterable[str]) -> None:
        new = self.demand.add(_key(cluster, t) for t in tickers)
        self._ensure_catalog()
        if new and self.catalog is not None:
            self._check_known(new)
            self._schedule_restream()

    def unwant(self, cluster: str, tickers: Iterable[str]) -> None:
        self.demand.remove((_key(cluster, t) for t in tickers), monotonic_ms())
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        due = self.demand.next_due_ms()
        if due is None or self._expiry is not None:
            return
        self._expiry = asyncio.get_running_loop().call_later(max(0.0, (due - monotonic_ms()) / 1000), self._expire)

    def _expire(self) -> None:
        self._expiry = None
        gone = self.demand.due(monotonic_ms())
        if gone:
            self._told_unknown.difference_update(gone)
            self._schedule_restream()
        self._schedule_expiry()

    def _ids(self, key: str) -> list[str]:
        return self.catalog.ids_for(*_split(key)) if self.catalog is not None else []

    def _check_known(self, keys: Iterable[str]) -> None:
        """Tell the subscribers of each topic that resolves to no feed, once per topic."""
        for key in keys:
            if key in self._told_unknown or self._ids(key):
                continue
            self._told_unknown.add(key)
            cluster, ticker = _split(key)
            what = f"no Pyth feeds for /{cluster}" if ticker == "*" else f"unknown Pyth feed on /{cluster}"
            self._tell_topic(key, protocol.error(f"{what} (not in Hermes {FEEDS_PATH}): {PYTH_CODE}.{ticker}"))

    def _tell_topic(self, key: str, status: bytes) -> None:
        cluster, ticker = _split(key)
        topic = Topic(PYTH_CODE, ticker)
        self.tell(cluster, status, lambda t: t == topic)

    # -- feed list ---------------------------------------------------------------------------------------------

    def _ensure_catalog(self) -> None:
        if self._catalog_task is None and self.state != "auth_failed":
            self.state = "loading feeds"
            self._catalog_task = self._spawn(self._catalog_loop(), "pyth-feeds")

    async def _catalog_loop(self) -> None:
        backoff = Backoff()
        while True:
            try:
                response = await self.client.get(FEEDS_PATH)
                if response.status_code in (401, 403):
                    raise _Fatal(f"Hermes refused the API key on {FEEDS_PATH}: HTTP {response.status_code}")
                if response.status_code != 200:
                    raise _Retry(f"{FEEDS_PATH}: HTTP {response.status_code} {response.text[:200]}")
                catalog = FeedCatalog.from_json(response.content)
            except _Fatal as exc:
                return self._auth_failed(str(exc))
            except (httpx.HTTPError, _Retry, msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.last_error = f"feed list: {type(exc).__name__}: {exc}"
                self.log.warning("pyth_feeds_unavailable", error=self.last_error)
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self._set_catalog(catalog)
            await asyncio.sleep(self.refresh_s)

    def _set_catalog(self, catalog: FeedCatalog) -> None:
        first = self.catalog is None
        self.catalog = catalog
        last_slot = self.decoder.last_slot
        self.decoder = UpdateDecoder(catalog)
        self.decoder.last_slot = last_slot
        self.rejected.clear()
        self._told_unknown = {k for k in self._told_unknown if not self._ids(k)}  # known now: may be told again
        self.log.info("pyth_feeds", feeds=len(catalog), unmapped=catalog.unmapped, first=first)
        if self.state == "loading feeds":
            self.state = "streaming"
        self._check_known(self.demand.wanted)
        self._schedule_restream()

    # -- streams -----------------------------------------------------------------------------------------------

    def wanted_ids(self) -> list[str]:
        ids: set[str] = set()
        for key in self.demand.wanted:
            ids.update(self._ids(key))
        return sorted(ids - self.rejected)

    def _schedule_restream(self) -> None:
        if self._restream_handle is None and self.state != "auth_failed":
            self._restream_handle = asyncio.get_running_loop().call_later(RESTREAM_DEBOUNCE_S, self._restream)

    def _restream(self) -> None:
        self._restream_handle = None
        ids = self.wanted_ids()
        chunks = [tuple(ids[i:i + MAX_IDS_PER_STREAM]) for i in range(0, len(ids), MAX_IDS_PER_STREAM)]
        if set(chunks) == set(self._streams):
            return
        old = [s for c, s in self._streams.items() if c not in chunks]
        new = []
        for chunk in chunks:
            if chunk not in self._streams:
                stream = _Stream(chunk)
                stream.task = self._spawn(self._run_stream(stream), "pyth-stream")
                self._streams[chunk] = stream
                new.append(stream)
        for stream in old:
            del self._streams[stream.ids]
        self.log.info("pyth_restream", ids=len(ids), streams=len(chunks), opened=len(new), closing=len(old))
        if old:
            self._spawn(self._retire(old, new), "pyth-retire")

    async def _retire(self, old: list[_Stream], new: list[_Stream]) -> None:
        """Close ``old`` once every stream of ``new`` answered (make before break)."""
        if new:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SWITCH_TIMEOUT_S):
                    await asyncio.gather(*(s.opened.wait() for s in new))
        for stream in old:
            if stream.task is not None:
                stream.task.cancel()

    async def _run_stream(self, stream: _Stream) -> None:
        backoff = Backoff()
        params = [("ids[]", i) for i in stream.ids] + [("parsed", "true")]
        while True:
            started = time.monotonic()
            try:
                async with aconnect_sse(self.client, "GET", STREAM_PATH, params=params) as source:
                    response = source.response
                    if response.status_code in (401, 403):
                        raise _Fatal(f"Hermes refused the API key on {STREAM_PATH}: HTTP {response.status_code}")
                    if response.status_code == 404:
                        body = (await response.aread()).decode(errors="replace")
                        stream.opened.set()
                        return self._not_found(stream, body)
                    if response.status_code != 200:
                        body = (await response.aread()).decode(errors="replace")
                        raise _Retry(f"HTTP {response.status_code}: {body[:200]}")
                    self._up(stream)
                    async for event in source.aiter_sse():
                        if event.event == "error":
                            self.metrics.inc("pyth_stream_errors")
                            self.log.warning("pyth_stream_error", message=event.data[:300])
                        elif event.data:
                            self._on_data(event.data)
                reason = "stream closed by Hermes"
            except _Fatal as exc:
                stream.opened.set()
                return self._auth_failed(str(exc))
            except (httpx.HTTPError, SSEError, _Retry) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self._down(stream, reason)
            if time.monotonic() - started >= STABLE_AFTER_S:
                backoff.reset()
            delay = backoff.next_delay()
            self.log.info("pyth_reconnecting", in_s=round(delay, 3), ids=len(stream.ids))
            await asyncio.sleep(delay)

    def _on_data(self, data: str) -> None:
        try:
            published = self.decoder.decode(data)
        except UpdateError as exc:
            self.metrics.inc("pyth_bad_updates")
            self.log.warning("pyth_bad_update", error=str(exc)[:300], size=len(data))
            return
        by_cluster: dict[str, list] = {}
        for cluster, event in published:
            by_cluster.setdefault(cluster, []).append(event)
        for cluster, events in by_cluster.items():
            self.publish(cluster, Frame(b"[" + b",".join(e.raw for e in events) + b"]", events))
        if published:
            self.metrics.inc("pyth_updates", len(published))

    def _clusters(self, ids: Iterable[str]) -> set[str]:
        by_id = self.catalog.by_id if self.catalog is not None else {}
        return {by_id[i].cluster for i in ids if i in by_id}

    def _up(self, stream: _Stream) -> None:
        stream.connects += 1
        stream.state = "streaming"
        stream.opened.set()
        if stream.connects > 1:
            self.metrics.inc("pyth_reconnects")
        self.log.info("pyth_stream_open", ids=len(stream.ids), connects=stream.connects)
        if stream.down:
            stream.down = False
            down_s = time.monotonic() - stream.down_since
            for cluster in self._clusters(stream.ids):
                self.notices.withdraw_notice(cluster, NOTICE_KEY, protocol.upstream_restored(cluster, down_s, PYTH_CODE))
        stream.was_up = True

    def _down(self, stream: _Stream, reason: str) -> None:
        stream.state = "backoff"
        self.last_error = reason
        self.log.warning("pyth_stream_lost", error=reason, ids=len(stream.ids))
        if stream.was_up and not stream.down:
            stream.down = True
            stream.down_since = time.monotonic()
            for cluster in self._clusters(stream.ids):
                self.notices.post_notice(cluster, NOTICE_KEY, protocol.upstream_down(
                    cluster, f"Pyth Hermes price stream lost ({reason})", PYTH_CODE), lambda t: t.code == PYTH_CODE)

    def _not_found(self, stream: _Stream, body: str) -> None:
        """Hermes answered 404 Price ids not found: drop those ids until the next feed list, tell who asked."""
        listed = {normalize_id(x) for x in body.partition(":")[2].split(",") if x.strip()}
        missing = (listed & set(stream.ids)) or set(stream.ids)
        self.rejected |= missing
        self.last_error = body[:300]
        self.log.warning("pyth_ids_not_found", ids=len(missing), body=body[:300])
        by_id = self.catalog.by_id if self.catalog is not None else {}
        for key in self.demand.wanted:
            cluster, ticker = _split(key)
            if ticker != "*" and set(self._ids(key)) & missing:
                feed = by_id.get(self._ids(key)[0])
                self._tell_topic(key, protocol.error(
                    f"Pyth Hermes does not stream feed {feed.id if feed else '?'} (404 Price ids not found): "
                    f"{PYTH_CODE}.{ticker}"))
        self._streams.pop(stream.ids, None)
        self._schedule_restream()

    def _auth_failed(self, message: str) -> None:
        if self.state == "auth_failed":
            return
        self.state = "auth_failed"
        self.last_error = message
        self.log.error("pyth_auth_failed", error=message, hint="check PYTH_API_KEY; not retrying")
        for key in self.demand.wanted:
            self._tell_topic(key, protocol.error(f"{message}; not retrying: {PYTH_CODE}.{_split(key)[1]}"))
        for stream in self._streams.values():
            if stream.task is not None and stream.task is not asyncio.current_task():
                stream.task.cancel()
        self._streams.clear()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.log.error("pyth_task_failed", task=task.get_name(), error=f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        for handle in (self._restream_handle, self._expiry):
            if handle is not None:
                handle.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()
        self.state = "stopped"

    def status(self) -> dict:
        return {
            "url": self.base_url,
            "state": self.state,
            "feeds": len(self.catalog) if self.catalog is not None else None,
            "topics": len(self.demand.wanted),
            "ids": sum(len(s.ids) for s in self._streams.values()),
            "streams": [{"ids": len(s.ids), "state": s.state, "connects": s.connects} for s in self._streams.values()],
            "rejected_ids": len(self.rejected),
            "last_error": self.last_error,
        }
