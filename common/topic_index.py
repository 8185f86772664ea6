"""Who wants which event: the topic index, with the at-most-once rule (DESIGN §2).

Subscribers are any hashable objects. :meth:`TopicIndex.lookup` answers, for an event's ``(code, ticker)``,
each subscriber at most once however many of its topics match (``T.*`` and ``T.AAPL`` together).
"""

from __future__ import annotations

from typing import Generic, Hashable, TypeVar

from common.topics import WILDCARD, Topic, bar_interval

S = TypeVar("S", bound=Hashable)

_CACHE_LIMIT = 100_000  # options have millions of contracts; keep memory bounded


class TopicIndex(Generic[S]):
    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], dict[S, None]] = {}
        self._by_code: dict[str, dict[S, None]] = {}
        self._bare: dict[S, None] = {}
        self._cache: dict[tuple[str, str], tuple[S, ...]] = {}

    def add(self, subscriber: S, topic: Topic) -> None:
        self._bucket(topic, create=True)[subscriber] = None  # type: ignore[index]
        self._cache.clear()

    def remove(self, subscriber: S, topic: Topic) -> None:
        bucket = self._bucket(topic, create=False)
        if bucket is None or subscriber not in bucket:
            return
        del bucket[subscriber]
        if not bucket and not topic.is_bare:  # drop empty buckets so the index stays as small as the demand
            if topic.ticker == WILDCARD:
                del self._by_code[topic.code]
            else:
                del self._exact[(topic.code, topic.ticker)]
        self._cache.clear()

    def lookup(self, code: str, ticker: str) -> tuple[S, ...]:
        """Every subscriber that wants an event with this code and ticker, each once, in subscription order."""
        key = (code, ticker)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        found: dict[S, None] = {}
        if self._bare and bar_interval(code) is None:  # bare "*" never includes bars
            found.update(self._bare)
        wild = self._by_code.get(code)
        if wild:
            found.update(wild)
        exact = self._exact.get(key)
        if exact:
            found.update(exact)
        result = tuple(found)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = result
        return result

    def __bool__(self) -> bool:
        return bool(self._exact or self._by_code or self._bare)

    def _bucket(self, topic: Topic, create: bool) -> dict[S, None] | None:
        if topic.is_bare:
            return self._bare
        if topic.ticker == WILDCARD:
            table, key = self._by_code, topic.code
        else:
            table, key = self._exact, (topic.code, topic.ticker)  # type: ignore[assignment]
        if create:
            return table.setdefault(key, {})  # type: ignore[arg-type]
        return table.get(key)  # type: ignore[arg-type]
